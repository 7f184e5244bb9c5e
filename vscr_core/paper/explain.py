"""What the paper's Sect. 5.5 shows, with numbers attached: Grad-CAM maps (Fig. 9), a t-SNE of
test features (Fig. 10) and top-10 retrieval rows (Figs. 11 and 12), baseline against VSCR.

Each figure has a function that computes (`gradcam_examples`, `tsne_features`, `retrievals`), a
table builder that turns the result into the notebook's CSV (`gradcam_table`, `tsne_table`,
`retrieval_table`), a plot (`plot_gradcam`, `plot_tsne`, `plot_retrieval`) and a statement that
says in words what the table measured (`gradcam_statement`, `tsne_statement`,
`retrieval_statement`). The notebooks 06-08 call these and nothing else.

    run = NotebookRun("08_retrieval", ...)
    models, ds = trained_models(run), test_data(run)
    res = retrievals(models, ds, run.config)
    fig11 = retrieval_table(res, select_queries(res, 4, seed, "random"))
    plot_retrieval(res, fig11, run.figure_path("fig11_retrieval"))

Features are those the evaluation ranks (experiments.features: bf16 autocast on the CPU) except
for Grad-CAM, which runs in fp32. Distances are Euclidean, as in the paper's inference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vscr_core.config import Config
from vscr_core.data.registry import dataset_spec
from vscr_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, load_image
from vscr_core.data.types import ReIDDataset, Sample
from vscr_core.files import save_figure

MODELS = ("baseline", "vscr")  # the two variants every figure compares, in row order
LABELS = {"baseline": "baseline", "vscr": "VSCR"}
CENTER = 0.5  # Fig. 9's central region: the middle half of the crop's height and width
BLUE, GREEN, RED = "#1f5af2", "#1ab233", "#e61f1f"  # query, true match, false match


# ---------------------------------------------------------------------------------------------
# Shared: the models, the test split, images for display


def trained_models(run, names: tuple[str, ...] = MODELS, progress: bool = True) -> dict:
    """{variant: trained model} for a NotebookRun, seed run.seeds[0] (trained once in
    run.runs_dir, loaded by every later notebook)."""
    return {name: run.trained_model(name, progress=progress) for name in names}


def test_data(run) -> ReIDDataset:
    """The query and gallery of the test split of the run's data set."""
    from vscr_core.train import load_data

    ds = load_data(run.config, **dataset_spec(run.dataset).protocol("test"))
    if not ds.query or not ds.gallery:
        raise ValueError(f"{ds.name}: the test split needs queries and a gallery; got "
                         f"{len(ds.query)} queries and {len(ds.gallery)} gallery images")
    return ds


def junk_rule(dataset: str, ds: ReIDDataset) -> str:
    """The evaluation's junk rule for `ds` (as experiments.evaluate_model): the data set's rule,
    where the cameras of its queries and gallery are known."""
    return dataset_spec(dataset).junk_rule([s.camid for s in ds.query + ds.gallery])


def display_image(x: torch.Tensor) -> np.ndarray:
    """An ImageNet-normalised (3, H, W) input tensor as an (H, W, 3) float image in [0, 1]."""
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(x.shape)}")
    img = x.detach().float().cpu() * IMAGENET_STD + IMAGENET_MEAN
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def _device(cfg: Config, device=None) -> torch.device:
    from vscr_core.runtime import resolve_device

    return resolve_device(cfg.train.device) if device is None else torch.device(device)


def _relative(paths: list[str], root: str) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def common_root(samples: list[Sample]) -> str:
    """The deepest folder holding every sample: tables store paths relative to it."""
    return os.path.commonpath([os.path.dirname(os.path.abspath(s.path)) for s in samples])


# ---------------------------------------------------------------------------------------------
# Fig. 9: Grad-CAM with a feature-similarity target


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


# ---------------------------------------------------------------------------------------------
# Fig. 10: t-SNE of 20 identities


def pick_identities(samples: list[Sample], n: int, seed: int) -> list[int]:
    """n identities (all, if fewer) drawn with `seed` among those with at least 2 images."""
    if n < 2:
        raise ValueError(f"t-SNE needs at least 2 identities, got n={n}")
    counts: dict[int, int] = {}
    for s in samples:
        counts[s.pid] = counts.get(s.pid, 0) + 1
    pids = sorted(p for p, c in counts.items() if c >= 2)
    if len(pids) < 2:
        raise ValueError(f"t-SNE needs 2 identities with 2+ images; found {len(pids)}")
    if len(pids) <= n:
        return pids
    return sorted(int(p) for p in np.random.default_rng(seed).choice(pids, n, replace=False))


def separability(feats, pids) -> dict:
    """How well identities separate in feature space (Euclidean, the retrieval metric):
    leave-one-out 1-NN identity accuracy, silhouette score, and the ratio of the mean distance
    between images of one identity to the mean distance between images of different ones."""
    from sklearn.metrics import silhouette_score

    x = np.asarray(feats, dtype=np.float64)
    y = np.asarray(pids)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features (N, D) and N labels expected; got {x.shape} and {y.shape}")
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))  # (N, N)
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(x), dtype=bool)
    nn = np.where(off, d, np.inf).argmin(1)
    return {"knn1_accuracy": float((y[nn] == y).mean()),
            "silhouette": float(silhouette_score(x, y, metric="euclidean")),
            "intra_inter_ratio": float(d[same & off].mean() / d[~same].mean())}


@dataclass
class TsneResult:
    samples: list[Sample]
    pids: np.ndarray  # (N,)
    is_gallery: np.ndarray  # (N,) bool
    features: dict[str, np.ndarray]  # model -> (N, D)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # model -> (N, 2)
    kl: dict[str, float] = field(default_factory=dict)  # t-SNE's final KL divergence
    perplexity: float = 0.0


def tsne_features(models: dict, ds: ReIDDataset, cfg: Config, num_ids: int = 20, seed: int = 0,
                  progress: bool = False) -> TsneResult:
    """Fig. 10's data: test images (query and gallery) of num_ids random identities, their
    features under every model, and a 2-D t-SNE of each (seeded; perplexity min(30, (N-1)/3);
    exact gradients up to 1000 images, faster than Barnes-Hut at this size)."""
    from sklearn.manifold import TSNE

    from vscr_core.experiments import features

    pool = ds.query + ds.gallery
    keep = set(pick_identities(pool, num_ids, seed))
    samples = [s for s in pool if s.pid in keep]
    gallery = {s.path for s in ds.gallery}
    res = TsneResult(samples, np.array([s.pid for s in samples]),
                     np.array([s.path in gallery for s in samples]), {})
    res.perplexity = float(min(30.0, (len(samples) - 1) / 3))
    for name, model in models.items():
        f = features(model, samples, cfg, progress=progress).numpy()  # (N, D)
        tsne = TSNE(n_components=2, perplexity=res.perplexity, init="pca", random_state=seed,
                    method="exact" if len(samples) <= 1000 else "barnes_hut")
        res.features[name] = f
        res.embeddings[name] = tsne.fit_transform(f.astype(np.float64))
        res.kl[name] = float(tsne.kl_divergence_)
    return res


def tsne_table(res: TsneResult) -> pd.DataFrame:
    """One row per model: the identities and images drawn, and the separability of the
    features (not of the 2-D embedding)."""
    rows = []
    for name, f in res.features.items():
        rows.append({"model": name, "identities": len(set(res.pids.tolist())),
                     "images": len(res.pids), "feature_dim": f.shape[1],
                     **{k: round(v, 4) for k, v in separability(f, res.pids).items()},
                     "tsne_perplexity": round(res.perplexity, 2),
                     "tsne_kl": round(res.kl[name], 4),
                     "pids": " ".join(map(str, sorted(set(res.pids.tolist()))))})
    return pd.DataFrame(rows)


def plot_tsne(res: TsneResult, out_png, title: str | None = None) -> Path:
    """Fig. 10: one panel per model, one colour per identity; stars are gallery images."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    names = list(res.embeddings)
    ids = sorted(set(res.pids.tolist()))
    cmap = colormaps["tab20"]
    fig = Figure(figsize=(6.2 * len(names), 6.0), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name, tag in zip(axes, names, "abcdefgh"):
        e = res.embeddings[name]
        for k, pid in enumerate(ids):
            colour = cmap(k % 20) if len(ids) <= 20 else colormaps["hsv"](k / len(ids))
            for gal, marker, size in ((False, "o", 28), (True, "*", 120)):
                sel = (res.pids == pid) & (res.is_gallery == gal)
                ax.scatter(e[sel, 0], e[sel, 1], s=size, marker=marker, color=colour,
                           edgecolors="black" if gal else "none", linewidths=0.6,
                           label=str(pid) if not gal else None)
        ax.set_title(f"({tag}) {LABELS.get(name, name)}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(title="identity", fontsize=7, title_fontsize=8, loc="center left",
                    bbox_to_anchor=(1.0, 0.5), markerscale=1.2)
    fig.suptitle(title or f"Fig. 10: t-SNE of test features, {len(ids)} identities, "
                          f"{len(res.pids)} images (stars: gallery images)", fontsize=11)
    return save_figure(fig, out_png)


def tsne_statement(table: pd.DataFrame) -> str:
    """Fig. 10's measured separability in words, from the table."""
    r0 = table.iloc[0]
    lines = [f"Features of {r0['identities']} test identities ({r0['images']} images), measured "
             "in feature space (Euclidean), not on the 2-D picture:"]
    for r in table.itertuples():
        lines.append(f"  {LABELS.get(r.model, r.model)}: leave-one-out 1-NN identity accuracy "
                     f"{r.knn1_accuracy:.3f}, silhouette {r.silhouette:.3f}, mean same-id / "
                     f"different-id distance {r.intra_inter_ratio:.3f}")
    by = table.set_index("model")
    if set(MODELS) <= set(by.index):
        b, v = by.loc["baseline"], by.loc["vscr"]
        closer = "closer together" if v["intra_inter_ratio"] < b["intra_inter_ratio"] \
            else "no closer together"
        lines.append(f"Relative to other identities, VSCR's images of one vehicle are {closer} "
                     f"than the baseline's (ratio {v['intra_inter_ratio']:.3f} vs "
                     f"{b['intra_inter_ratio']:.3f}); 1-NN accuracy changes by "
                     f"{v['knn1_accuracy'] - b['knn1_accuracy']:+.3f}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figs. 11 and 12: top-10 retrieval


@dataclass
class Ranking:
    """Every query's ranked gallery under one model (ties by gallery order; junk dropped)."""

    top: np.ndarray  # (Q, k) gallery indices, best first; -1 past the end of a short list
    top_dist: np.ndarray  # (Q, k) Euclidean distances
    first_true: np.ndarray  # (Q,) 1-based rank of the first true match; 0 when there is none


def rank_gallery(q_feats, g_feats, q_pids, g_pids, q_camids=None, g_camids=None,
                 junk: str = "none", k: int = 10, chunk: int = 256) -> Ranking:
    """Exact Euclidean ranking (float64) of the gallery for every query, in chunks of queries.
    junk="same_camera" drops gallery images with the query's id and camera, as the protocol."""
    if junk not in ("none", "same_camera"):
        raise ValueError(f"junk must be 'none' or 'same_camera', got {junk!r}")
    q = torch.as_tensor(np.asarray(q_feats), dtype=torch.float64)
    g = torch.as_tensor(np.asarray(g_feats), dtype=torch.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"features must be (Q, D) and (G, D); got {tuple(q.shape)} and "
                         f"{tuple(g.shape)}")
    qp, gp = np.asarray(q_pids), np.asarray(g_pids)
    if len(qp) != len(q) or len(gp) != len(g):
        raise ValueError(f"{len(qp)} query and {len(gp)} gallery labels for {len(q)} and "
                         f"{len(g)} features")
    if junk == "same_camera":
        if q_camids is None or g_camids is None:
            raise ValueError("junk='same_camera' needs q_camids and g_camids")
        qc, gc = np.asarray(q_camids), np.asarray(g_camids)
    k_eff = min(k, len(g))
    top = np.full((len(q), k), -1, dtype=np.int64)
    top_dist = np.full((len(q), k), np.nan)
    first = np.zeros(len(q), dtype=np.int64)
    for a in range(0, len(q), chunk):
        # (c, G) float64, by differences (not the matrix-product shortcut, whose rounding
        # could reorder near-ties)
        d = torch.cdist(q[a:a + chunk], g, compute_mode="donot_use_mm_for_euclid_dist")
        d = d.numpy()
        match = qp[a:a + chunk, None] == gp[None, :]
        keep = np.ones_like(match)
        if junk == "same_camera":
            keep = ~(match & (qc[a:a + chunk, None] == gc[None, :]))
        order = np.argsort(np.where(keep, d, np.inf), axis=1, kind="stable")  # (c, G)
        for r in range(len(order)):
            row = order[r][keep[r][order[r]]]  # junk removed, order kept
            n = min(k_eff, len(row))
            top[a + r, :n] = row[:n]
            top_dist[a + r, :n] = d[r, row[:n]]
            hits = np.flatnonzero(match[r][row])
            first[a + r] = hits[0] + 1 if len(hits) else 0
    return Ranking(top, top_dist, first)


@dataclass
class RetrievalResult:
    dataset: str
    query: list[Sample]
    gallery: list[Sample]
    rankings: dict[str, Ranking]  # model -> Ranking
    junk: str
    root: str

    def rank1(self, name: str) -> float:
        """Share of queries (with a true match) whose first result is a true match."""
        f = self.rankings[name].first_true
        return float((f[f > 0] == 1).mean())


def retrievals(models: dict, ds: ReIDDataset, cfg: Config, junk: str | None = None,
               k: int = 10, progress: bool = False) -> RetrievalResult:
    """Figs. 11-12's data: every test query's top-k under every model (the evaluation's
    features; exact Euclidean ranking; junk None: the data set's rule, see junk_rule)."""
    from vscr_core.experiments import features

    junk = junk_rule(cfg.data.dataset, ds) if junk is None else junk
    rankings = {}
    for name, model in models.items():
        qf = features(model, ds.query, cfg, progress=progress)
        gf = features(model, ds.gallery, cfg, progress=progress)
        rankings[name] = rank_gallery(qf, gf, [s.pid for s in ds.query],
                                      [s.pid for s in ds.gallery], [s.camid for s in ds.query],
                                      [s.camid for s in ds.gallery], junk=junk, k=k)
    return RetrievalResult(ds.name, list(ds.query), list(ds.gallery), rankings, junk,
                           common_root(ds.query + ds.gallery))


SELECTIONS = {
    "random": "random test queries (seeded)",
    "disagree": "queries where baseline and VSCR disagree at rank 1 (half each way where "
                "possible), seeded",
}


def fig12_selection(dataset: str) -> str:
    """How Fig. 12 picks its queries. The paper's Fig. 12 is random samples on VeRi-776: run on
    VeRi-776, so is ours (queries other than Fig. 11's). On any other data set Fig. 12 shows a
    second, documented choice: the queries where baseline and VSCR disagree at rank 1."""
    return "random" if dataset == "veri776" else "disagree"


def select_queries(res: RetrievalResult, n: int, seed: int, selection: str = "random",
                   exclude=()) -> list[tuple[int, str]]:
    """n (query index, why) pairs of distinct identities, none in `exclude`, drawn with `seed`.
    "random": among queries with a true match. "disagree": queries where exactly one of baseline
    and VSCR ranks a true match first, split evenly between the two directions where possible,
    then filled with queries that both miss at rank 1, then with random ones."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection={selection!r}; expected one of {', '.join(SELECTIONS)}")
    if n < 1:
        raise ValueError(f"number of queries must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    names = list(res.rankings)
    has_match = np.all([res.rankings[m].first_true > 0 for m in names], axis=0)
    ok = has_match.copy()
    ok[np.asarray(list(exclude), dtype=np.int64)] = False
    pids = np.array([s.pid for s in res.query])
    picked: list[tuple[int, str]] = []

    def take(candidates, m, why):
        for i in rng.permutation(np.flatnonzero(candidates)):
            if len(picked) >= m:
                return
            if pids[i] not in {pids[j] for j, _ in picked}:
                picked.append((int(i), why))

    if selection == "disagree":
        if not set(MODELS) <= set(names):
            raise ValueError(f"selection='disagree' needs models {MODELS}, got {names}")
        b = res.rankings["baseline"].first_true == 1
        v = res.rankings["vscr"].first_true == 1
        take(ok & v & ~b, (n + 1) // 2, "VSCR right, baseline wrong at rank 1")
        take(ok & b & ~v, n, "baseline right, VSCR wrong at rank 1")
        take(ok & v & ~b, n, "VSCR right, baseline wrong at rank 1")
        take(ok & ~b & ~v, n, "both wrong at rank 1 (too few disagreements)")
    take(ok, n, "random" if selection == "random" else "random (too few disagreements)")
    return picked


def retrieval_table(res: RetrievalResult, picked: list[tuple[int, str]],
                    figure: str = "") -> pd.DataFrame:
    """One row per shown query: its image, why it was chosen, and per model the rank of the
    first true match over the whole gallery, and the top-k shown (paths, ids, + true / - false).
    Paths are relative to the folder in `res.root` (the table's provenance names it)."""
    rows = []
    for k, (i, why) in enumerate(picked, start=1):
        q = res.query[i]
        row = {"figure": figure, "dataset": res.dataset, "query": k, "query_index": i,
               "selection": why, "query_path": os.path.relpath(q.path, res.root),
               "query_pid": q.pid, "query_camid": q.camid}
        for name, r in res.rankings.items():
            shown = [j for j in r.top[i] if j >= 0]
            row[f"{name}_first_true_rank"] = int(r.first_true[i])
            row[f"{name}_top_paths"] = ";".join(
                _relative([res.gallery[j].path for j in shown], res.root))
            row[f"{name}_top_pids"] = ";".join(str(res.gallery[j].pid) for j in shown)
            row[f"{name}_top_true"] = "".join("+" if res.gallery[j].pid == q.pid else "-"
                                              for j in shown)
        rows.append(row)
    return pd.DataFrame(rows)


def _framed(path: str, size: int, colour: str, border: int):
    """The image at `path` as a size x size PIL image inside a `colour` frame."""
    from PIL import Image

    img = Image.fromarray(load_image(path, (size, size)).permute(1, 2, 0).numpy())
    out = Image.new("RGB", (size + 2 * border, size + 2 * border), colour)
    out.paste(img, (border, border))
    return out


def plot_retrieval(res: RetrievalResult, table: pd.DataFrame, out_png, title: str = "",
                   cell: int = 72, border: int = 4, pad: int = 3) -> Path:
    """Figs. 11-12: per query a baseline row above a VSCR row, the query framed blue, then the
    top-k gallery images framed green (true match) or red (false). Drawn pixel for pixel (PIL),
    each image at cell x cell px."""
    from PIL import Image, ImageDraw, ImageFont

    names = list(res.rankings)
    shown = {n: [[j for j in res.rankings[n].top[i] if j >= 0] for i in table["query_index"]]
             for n in names}
    k = max(len(row) for rows in shown.values() for row in rows)
    side = cell + 2 * border
    step = side + pad  # frames are `pad` white pixels apart
    gap, text, head = side // 3, 120, 44  # gap between queries, label column, title band
    height = head + len(table) * (len(names) * step + gap) - gap
    width = text + (k + 1) * step + side // 4
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    if not title:
        title = (f"{table['figure'].iloc[0]}: top-{k} on {table['dataset'].iloc[0]} "
                 f"({'; '.join(sorted(set(table['selection'])))})")
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((8, 24), "blue: query; green: true match; red: false match", fill="black",
              font=font)
    for qi, r in enumerate(table.itertuples()):
        q = res.query[r.query_index]
        for mi, name in enumerate(names):
            y = head + qi * (len(names) * step + gap) + mi * step
            sheet.paste(_framed(q.path, cell, BLUE, border), (text, y))
            for j, g in enumerate(res.gallery[i] for i in shown[name][qi]):
                colour = GREEN if g.pid == q.pid else RED
                sheet.paste(_framed(g.path, cell, colour, border),
                            (text + step + side // 4 + j * step, y))
            first = getattr(r, f"{name}_first_true_rank")
            draw.text((text - 8, y + side // 2), f"{LABELS.get(name, name)}\nfirst true: {first}",
                      fill="black", font=font, anchor="rm", align="right")
    return save_figure(sheet, out_png)


def retrieval_statement(table: pd.DataFrame, res: RetrievalResult | None = None) -> str:
    """A retrieval figure's measured ranks in words, from its table (and, given `res`, the
    rank-1 of both models over every test query, for context)."""
    names = [c.removesuffix("_first_true_rank") for c in table.columns
             if c.endswith("_first_true_rank")]
    fig = table["figure"].iloc[0] or "retrieval"
    lines = [f"{fig} on {table['dataset'].iloc[0]}, {len(table)} queries "
             f"({'; '.join(sorted(set(table['selection'])))}):"]
    for r in table.itertuples():
        ranks = ", ".join(f"{LABELS.get(m, m)} {getattr(r, f'{m}_first_true_rank')}"
                          for m in names)
        lines.append(f"  query {r.query} (id {r.query_pid}): first true match at rank {ranks}")
    if set(MODELS) <= set(names):
        b, v = table["baseline_first_true_rank"], table["vscr_first_true_rank"]
        lines.append(f"VSCR ranks the true match earlier on {int((v < b).sum())}, later on "
                     f"{int((v > b).sum())} and equally on {int((v == b).sum())} of these "
                     "queries.")
    if res is not None:
        overall = ", ".join(f"{LABELS.get(m, m)} {100 * res.rank1(m):.1f} %"
                            for m in res.rankings)
        lines.append(f"Over all {len(res.query)} test queries, rank-1: {overall} (a few rows "
                     "do not measure accuracy; this does).")
    return "\n".join(lines)


__all__ = [
    "CENTER", "LABELS", "MODELS", "SELECTIONS", "FeatureSimilarityTarget", "GradCamResult",
    "Ranking", "RetrievalResult", "TsneResult", "cam_center_share", "cam_entropy",
    "center_mask", "common_root", "display_image", "fig12_selection", "fp32_features",
    "grad_cam", "gradcam_examples", "gradcam_statement", "gradcam_table", "junk_rule",
    "pick_identities", "pick_pairs", "plot_gradcam", "plot_retrieval", "plot_tsne",
    "rank_gallery", "retrieval_statement", "retrieval_table", "retrievals", "select_queries",
    "separability", "test_data", "trained_models", "tsne_features",
    "tsne_statement", "tsne_table",
]
