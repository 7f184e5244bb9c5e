"""Fig. 9: Grad-CAM maps of test queries, baseline against VSCR, with numbers attached. The
target is the cosine similarity between the query's feature and that of the same identity's
gallery image; the maps come from res5c of branch d = 1 and, unlike the other figures' features,
are computed in fp32. `gradcam_examples` computes, `gradcam_table` turns the result into the
notebook's CSV (similarity, share of CAM mass in the central region, normalised entropy),
`plot_gradcam` draws and `gradcam_statement` says in words what the table measured.

    cams = gradcam_examples(models, ds, run.config, n=6, seed=run.seeds[0])
    plot_gradcam(cams, run.figure_path("fig9_gradcam"))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vscr_core.config import Config
from vscr_core.data.transforms import ImageDataset
from vscr_core.data.types import ReIDDataset, Sample
from vscr_core.files import save_figure
from vscr_core.paper.explain.shared import LABELS, MODELS, common_root, display_image, junk_rule

CENTER = 0.5  # Fig. 9's central region: the middle half of the crop's height and width


class FeatureSimilarityTarget:
    """Grad-CAM's target for a ReID model: the cosine similarity between the image's feature f
    (the model's eval-mode output) and a fixed reference feature, e.g. the feature of the same
    identity's gallery image. pytorch_grad_cam calls it on one output row (D,) at a time."""

    def __init__(self, reference: torch.Tensor):
        if reference.ndim != 1:
            raise ValueError(f"reference feature must be (D,), got shape {tuple(reference.shape)}")
        self.reference = reference.detach().float()

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.shape[-1] != self.reference.shape[0]:
            raise ValueError(f"feature of size {output.shape[-1]} against a reference of size "
                             f"{self.reference.shape[0]}")
        ref = self.reference.to(output.device)
        return F.cosine_similarity(output.float(), ref.expand_as(output), dim=-1)


def _device(cfg: Config, device=None) -> torch.device:
    from vscr_core.runtime import resolve_device

    return resolve_device(cfg.train.device) if device is None else torch.device(device)


def _fp32(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model in fp32, standard memory layout, eval mode, on `device` (the feature extractor
    may have left it channels-last)."""
    return model.float().to(device, memory_format=torch.contiguous_format).eval()


def fp32_features(model: torch.nn.Module, images: torch.Tensor, device="cpu") -> torch.Tensor:
    """Features (B, D) in fp32 without gradients (Grad-CAM's references and scores)."""
    device = torch.device(device)
    model = _fp32(model, device)
    with torch.no_grad():
        return model(images.to(device)).float().cpu()


def grad_cam(model: torch.nn.Module, images: torch.Tensor, references: torch.Tensor,
             layer: torch.nn.Module | None = None, device="cpu") -> tuple[np.ndarray, tuple]:
    """Grad-CAM maps (B, H, W) in [0, 1] (pytorch_grad_cam's min-max scaling per image) of
    `images` (B, 3, H, W) for the similarity of each image's feature to references[i] (B, D).
    `layer` defaults to model.res5_layer(0), the last res5 block of branch d = 1. Runs in fp32.
    Also returns the layer's spatial grid (h, w): the map's real resolution before upsampling."""
    from pytorch_grad_cam import GradCAM

    if images.ndim != 4 or references.ndim != 2 or len(images) != len(references):
        raise ValueError(f"expected images (B, 3, H, W) and references (B, D); got "
                         f"{tuple(images.shape)} and {tuple(references.shape)}")
    device = torch.device(device)
    model = _fp32(model, device)
    layer = model.res5_layer(0) if layer is None else layer
    cam = GradCAM(model=model, target_layers=[layer])
    try:
        with torch.enable_grad():
            maps = cam(input_tensor=images.float().to(device),
                       targets=[FeatureSimilarityTarget(r) for r in references])
        grid = tuple(cam.activations_and_grads.activations[0].shape[-2:])
    finally:
        cam.activations_and_grads.release()
    return np.asarray(maps, dtype=np.float32), grid  # (B, H, W)


def center_mask(shape: tuple[int, int], fraction: float = CENTER) -> np.ndarray:
    """Boolean (H, W) mask of the central box covering `fraction` of the height and width."""
    if not 0 < fraction <= 1:
        raise ValueError(f"central fraction must be in (0, 1], got {fraction}")
    h, w = shape
    mask = np.zeros((h, w), bool)
    top, left = round(h * (1 - fraction) / 2), round(w * (1 - fraction) / 2)
    mask[top:h - top, left:w - left] = True
    return mask


def cam_center_share(cam: np.ndarray, fraction: float = CENTER) -> float:
    """Share of the map's total mass inside center_mask; NaN for an all-zero map."""
    total = float(cam.sum())
    return float(cam[center_mask(cam.shape, fraction)].sum()) / total if total > 0 else np.nan


def cam_entropy(cam: np.ndarray) -> float:
    """Entropy of the map read as a distribution over pixels, divided by its maximum log(H W):
    1 for a flat map, lower for a concentrated one; NaN for an all-zero map."""
    total = float(cam.sum())
    if total <= 0:
        return np.nan
    p = cam.ravel() / total
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(cam.size))


@dataclass
class GradCamResult:
    queries: list[Sample]
    references: list[Sample]  # the same identity's gallery image for each query
    images: torch.Tensor  # (N, 3, H, W) model inputs of the queries
    cams: dict[str, np.ndarray]  # model -> (N, H, W)
    similarity: dict[str, np.ndarray]  # model -> (N,) cosine(f(query), f(reference)), fp32
    grid: tuple[int, int]  # the target layer's spatial size
    root: str = ""


def pick_pairs(ds: ReIDDataset, n: int, seed: int, junk: str = "none"):
    """n (query, reference) pairs of distinct identities, drawn with `seed`: a random query of
    each drawn identity and its first gallery image that the protocol counts (another camera
    under the same-camera junk rule)."""
    if n < 1:
        raise ValueError(f"number of Grad-CAM examples must be >= 1, got {n}")
    refs: dict[int, Sample] = {}
    for q in ds.query:
        if q.pid in refs:
            continue
        for g in ds.gallery:
            if g.pid == q.pid and (junk == "none" or g.camid != q.camid):
                refs[q.pid] = g
                break
    if not refs:
        raise ValueError(f"{ds.name}: no query has a gallery image of its identity")
    rng = np.random.default_rng(seed)
    pids = sorted(refs)
    chosen = rng.choice(pids, size=min(n, len(pids)), replace=False)
    pairs = []
    for pid in chosen:
        own = [q for q in ds.query if q.pid == pid and (junk == "none"
                                                         or q.camid != refs[pid].camid)]
        pairs.append((own[int(rng.integers(len(own)))], refs[int(pid)]))
    return pairs


def gradcam_examples(models: dict, ds: ReIDDataset, cfg: Config, n: int = 6, seed: int = 0,
                     junk: str | None = None, device=None) -> GradCamResult:
    """Fig. 9's data: n test queries, each with its Grad-CAM map under every model, the target
    being the similarity to the feature of the same identity's gallery image (fp32)."""
    device = _device(cfg, device)
    junk = junk_rule(cfg.data.dataset, ds) if junk is None else junk
    pairs = pick_pairs(ds, n, seed, junk)
    queries, refs = [p[0] for p in pairs], [p[1] for p in pairs]

    def inputs(samples):
        data = ImageDataset(samples, image_size=cfg.data.image_size, train=False)
        return torch.stack([data[i][0] for i in range(len(data))])  # (N, 3, H, W)

    images, ref_images = inputs(queries), inputs(refs)
    cams, sims, grid = {}, {}, (0, 0)
    for name, model in models.items():
        q_f, ref_f = fp32_features(model, torch.cat([images, ref_images]), device).chunk(2)
        sims[name] = F.cosine_similarity(q_f, ref_f, dim=1).numpy()
        cams[name], grid = grad_cam(model, images, ref_f, device=device)
    return GradCamResult(queries, refs, images, cams, sims, grid,
                         common_root(queries + refs))


def gradcam_table(res: GradCamResult) -> pd.DataFrame:
    """One row per example: the images, and per model the similarity score, the share of CAM
    mass in the central region and the CAM's normalised entropy."""
    h, w = res.images.shape[-2:]
    area = float(center_mask((h, w)).mean())
    rows = []
    for i, (q, r) in enumerate(zip(res.queries, res.references)):
        row = {"example": i + 1, "pid": q.pid,
               "query_path": os.path.relpath(q.path, res.root),
               "reference_path": os.path.relpath(r.path, res.root),
               "input_hw": f"{h}x{w}", "cam_grid_hw": f"{res.grid[0]}x{res.grid[1]}",
               "center_area_share": round(area, 4)}
        for name in res.cams:
            cam = res.cams[name][i]
            row[f"{name}_similarity"] = round(float(res.similarity[name][i]), 4)
            row[f"{name}_center_share"] = round(cam_center_share(cam), 4)
            row[f"{name}_entropy"] = round(cam_entropy(cam), 4)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_gradcam(res: GradCamResult, out_png, title: str | None = None) -> Path:
    """Fig. 9: rows input / one per model, one column per query, at the model's input resolution
    (no smoothing); the title of each overlay gives the model's similarity to the reference."""
    from matplotlib.figure import Figure
    from pytorch_grad_cam.utils.image import show_cam_on_image

    n, names = len(res.queries), list(res.cams)
    fig = Figure(figsize=(1.7 * n + 1.0, 1.9 * (1 + len(names))), dpi=100, layout="constrained")
    axes = fig.subplots(1 + len(names), n, squeeze=False)
    for i in range(n):
        rgb = display_image(res.images[i])
        axes[0, i].imshow(rgb, interpolation="nearest")
        axes[0, i].set_title(f"id {res.queries[i].pid}", fontsize=9)
        for k, name in enumerate(names, start=1):
            overlay = show_cam_on_image(rgb.astype(np.float32), res.cams[name][i], use_rgb=True)
            axes[k, i].imshow(overlay, interpolation="nearest")
            axes[k, i].set_title(f"sim {res.similarity[name][i]:.3f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for k, label in enumerate(["input", *(LABELS.get(m, m) for m in names)]):
        axes[k, 0].set_ylabel(label, fontsize=11)
    fig.suptitle(title or f"Fig. 9: Grad-CAM on res5c of branch d = 1 (map grid "
                          f"{res.grid[0]}x{res.grid[1]}); target: cosine similarity to the "
                          "same identity's gallery image", fontsize=10)
    return save_figure(fig, out_png)


def gradcam_statement(table: pd.DataFrame) -> str:
    """Fig. 9's measured numbers in words, from the table."""
    area = table["center_area_share"].iloc[0]
    names = [c.removesuffix("_similarity") for c in table.columns if c.endswith("_similarity")]
    lines = [f"Grad-CAM on {len(table)} test queries (input {table['input_hw'].iloc[0]}, map "
             f"grid {table['cam_grid_hw'].iloc[0]} before upsampling):"]
    for m in names:
        lines.append(f"  {LABELS.get(m, m)}: mean similarity to the reference "
                     f"{table[f'{m}_similarity'].mean():.3f}; CAM mass in the central region "
                     f"{table[f'{m}_center_share'].mean():.3f} (a flat map: {area:.3f}); "
                     f"normalised entropy {table[f'{m}_entropy'].mean():.3f} (flat: 1)")
    if set(MODELS) <= set(names):
        more = int((table["vscr_center_share"] > table["baseline_center_share"]).sum())
        sharper = int((table["vscr_entropy"] < table["baseline_entropy"]).sum())
        lines.append(f"VSCR puts more of its map in the centre than the baseline on {more} of "
                     f"{len(table)} queries, and has the more concentrated map on {sharper}.")
    grid = [int(v) for v in str(table["cam_grid_hw"].iloc[0]).split("x")]
    if min(grid) <= 2:
        lines.append(f"At a {grid[0]}x{grid[1]} map grid the upsampled maps are symmetric about "
                     "the crop's centre, so the central share carries no information here.")
    lines.append("These numbers describe where the maps fall, not whether the cues are "
                 "discriminative; the paper's claim about Fig. 9 is qualitative.")
    return "\n".join(lines)


__all__ = [
    "CENTER", "FeatureSimilarityTarget", "GradCamResult", "cam_center_share", "cam_entropy",
    "center_mask", "fp32_features", "grad_cam", "gradcam_examples", "gradcam_statement",
    "gradcam_table", "pick_pairs", "plot_gradcam",
]
