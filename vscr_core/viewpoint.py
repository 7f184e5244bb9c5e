"""The viewpoint classifier (Sect. 5.2.1, 5.3.1, Fig. 6) and view labels for data sets without any.

VSCR's view adversary needs a view label per training image. UAV-VeID gives them (4 classes:
front, rear, left, right); VeRi-776, VERI-Wild (3: front, side, rear) and VehicleID (2: front,
rear) do not, so the paper trains a small classifier on a labelled subset and labels the rest.

    fit = train_viewpoint_classifier(view_samples(ds.train, ds.num_views, 3), ViewpointConfig(3))
    label_dataset(fit.model, other_ds)            # -> results/views/<name>-3views.csv (+ .txt)
    df = fraction_curve(ds)                        # Fig. 6: accuracy vs % of labelled images
    plot_fraction_curve(df, "figures/fig6_viewpoint.png"); plot_confusion(df, ...)

Coarser classifiers are trained on merged labels (types.merge_view): left and right become side;
for 2 classes a side view has no counterpart and is dropped from that classifier's training and
test images. The paper's classifier is VGG_CNN_M_1024; a ResNet-18 trunk at 64x64 does the same
job here ("viewpoint recognition is not a challenging task", Sect. 5.2.1); Fig. 6 runs it at 32x32
to fit a CPU budget (FIG6_CONFIG). Crops are padded to a square first, keeping the box shape.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from vscr_core.data.transforms import ImageDataset
from vscr_core.data.types import UNKNOWN, VIEW_NAMES, ReIDDataset, Sample, merge_view
from vscr_core.files import (
    REPO_ROOT,
    atomic_write_bytes,
    git_commit,
    load_tagged,
    save_figure,
    save_tagged,
)
from vscr_core.model import BACKBONES, load_imagenet_weights
from vscr_core.runtime import amp_settings, autocast, resolve_device, seed_everything

VIEWS_DIR = REPO_ROOT / "results" / "views"  # where predicted labels go by default
CHECKPOINT_FORMAT = "vscr-viewpoint-v1"


@dataclass
class ViewpointConfig:
    num_views: int = 4  # 4 (UAV-VeID), 3 (VeRi-776, VERI-Wild) or 2 (VehicleID)
    backbone: str = "resnet18"  # any key of model.BACKBONES
    pretrained: str | None = None  # None: random init (works offline); "imagenet" or a file
    image_size: int = 64  # a view is coarse shape: 64 px keeps a CPU run to seconds
    steps: int = 300  # optimisation steps, fixed so that every data fraction gets the same budget
    batch_size: int = 64
    lr: float = 0.05  # peak of the one-cycle schedule (SGD, momentum 0.9)
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # bf16 + channels-last on CPU (runtime.amp_settings)
    workers: int = 0  # decoded images are cached in-process; workers would each decode again

    def __post_init__(self):
        if self.num_views not in VIEW_NAMES:
            raise ValueError(f"num_views must be 2, 3 or 4, got {self.num_views}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r}; expected one of {list(BACKBONES)}")
        if not 16 <= self.image_size <= 128:
            raise ValueError(f"image_size {self.image_size}; expected 16..128 pixels")


# What made results/viewpoint_fig6.csv: 12 runs in about 10 minutes on a shared 2-core CPU.
FIG6_CONFIG = ViewpointConfig(image_size=32, steps=200)


class ViewpointNet(nn.Module):
    """A torchvision ResNet whose classifier predicts num_views view classes."""

    def __init__(self, num_views: int = 4, backbone: str = "resnet18", image_size: int = 64,
                 pretrained: str | None = None):
        super().__init__()
        self.num_views, self.backbone, self.image_size = num_views, backbone, image_size
        self.net = BACKBONES[backbone][0](weights=None, num_classes=num_views)
        if pretrained:
            missing, _ = self.net.load_state_dict(load_imagenet_weights(backbone, pretrained),
                                                  strict=False)
            assert set(missing) == {"fc.weight", "fc.bias"}, missing  # only the new classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, num_views) logits


class SquareImageDataset(ImageDataset):
    """ImageDataset whose crops are padded to a square before resizing. A UAV box's shape is
    a view cue (wide for left/right, tall for front/rear) that a plain resize would erase."""

    def _decoded(self, i: int) -> torch.Tensor:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        with Image.open(self.samples[i].path) as im:
            im = im.convert("RGB")
            side = max(im.size)
            square = Image.new("RGB", (side, side), (124, 116, 104))  # ImageNet mean: 0 after norm
            square.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
            square = square.resize((self.size[1], self.size[0]), Image.BILINEAR)
        img = torch.from_numpy(np.asarray(square).copy()).permute(2, 0, 1)  # (3, H, W) uint8
        if self.cache is not None:
            self.cache[i] = img
        return img


class ViewpointFit(NamedTuple):
    model: ViewpointNet  # in eval mode, on the training device
    history: list[dict]  # one row per epoch: epoch, step, lr, loss, train_acc, images_per_s


# ---------------------------------------------------------------------------------------------
# Labels


def view_samples(samples: list[Sample], from_views: int, to_views: int) -> list[Sample]:
    """Samples with views merged from one encoding into a coarser one (4 -> 3: left, right ->
    side; 3 -> 2: side dropped). Images whose view is unknown or has no counterpart are left out."""
    out = [s._replace(view=merge_view(s.view, from_views, to_views)) for s in samples]
    return [s for s in out if s.view != UNKNOWN]


def split_by_identity(samples: list[Sample], test_fraction: float = 0.2,
                      seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """(train, test): a seeded `test_fraction` of the identities is held out, so no car is seen
    in training and in test."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction {test_fraction}; expected a number in (0, 1)")
    ids = sorted({s.pid for s in samples})
    if len(ids) < 2:
        raise ValueError(f"{len(ids)} identities; need at least 2 to hold some out")
    n_test = min(len(ids) - 1, max(1, round(test_fraction * len(ids))))
    held = set(np.random.default_rng(seed).choice(ids, n_test, replace=False).tolist())
    return [s for s in samples if s.pid not in held], [s for s in samples if s.pid in held]


def _check_views(samples: list[Sample], num_views: int) -> None:
    if not samples:
        raise ValueError("no labelled images to train the viewpoint classifier on")
    bad = next((s for s in samples if not 0 <= s.view < num_views), None)
    if bad is not None:
        raise ValueError(f"{bad.path}: view {bad.view}; expected 0..{num_views - 1} "
                         f"({', '.join(VIEW_NAMES[num_views])}); merge labels with view_samples")


# ---------------------------------------------------------------------------------------------
# Training and prediction


def train_viewpoint_classifier(samples: list[Sample], cfg: ViewpointConfig | None = None,
                               progress: bool = True) -> ViewpointFit:
    """Train a classifier on `samples`, whose views are in cfg.num_views' encoding. The same
    config and samples give the same weights (one thread order aside)."""
    cfg = cfg or ViewpointConfig()
    _check_views(samples, cfg.num_views)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    dtype, channels_last = amp_settings(device, cfg.precision)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = ViewpointNet(cfg.num_views, cfg.backbone, cfg.image_size, cfg.pretrained)
    model = model.to(device, memory_format=memory_format).train()

    # Flips swap left and right labels (num_views tells ImageDataset which encoding it holds).
    size = (cfg.image_size, cfg.image_size)
    data = SquareImageDataset(samples, size, train=True, num_views=cfg.num_views, cache=True)
    batch_size = min(cfg.batch_size, len(data))
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=cfg.workers,
        generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=cfg.workers > 0)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.2)

    history, step = [], 0
    bar = tqdm(total=cfg.steps, desc=f"viewpoint ({len(data)} images)", disable=not progress,
               leave=False)
    for epoch in range(math.ceil(cfg.steps / len(loader))):
        t0, n_seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for images, _, _, views, _ in loader:
            if step == cfg.steps:
                break
            # 1. forward in bf16 (CPU) / mixed precision (GPU)
            images = images.to(device, memory_format=memory_format, non_blocking=True)
            views = views.to(device)
            with autocast(device, dtype):
                logits = model(images)  # (B, num_views)
            loss = F.cross_entropy(logits.float(), views)
            # 2. step
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            n_seen += len(views)
            loss_sum += loss.item() * len(views)
            correct += (logits.argmax(1) == views).sum().item()
            bar.update()
        history.append({"epoch": epoch, "step": step, "lr": sched.get_last_lr()[0],
                        "loss": loss_sum / n_seen, "train_acc": correct / n_seen,
                        "images_per_s": n_seen / (time.perf_counter() - t0)})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", acc=f"{history[-1]['train_acc']:.3f}")
    bar.close()
    return ViewpointFit(model.eval(), history)


@torch.no_grad()
def predict_views(model: ViewpointNet, samples: list[Sample], batch_size: int = 256,
                  precision: str = "auto", progress: bool = False) -> np.ndarray:
    """Class probabilities (N, num_views), float32, in the order of `samples`."""
    device = next(model.parameters()).device
    dtype, channels_last = amp_settings(device, precision)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.eval()
    data = SquareImageDataset(samples, (model.image_size, model.image_size))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    out = []
    for images, *_ in tqdm(loader, desc="predicting views", disable=not progress, leave=False):
        with autocast(device, dtype):
            logits = model(images.to(device, memory_format=memory_format))
        out.append(logits.float().softmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_views), np.float32)


def evaluate_viewpoint(model: ViewpointNet, samples: list[Sample],
                       batch_size: int = 256) -> dict:
    """{'accuracy': fraction correct, 'confusion': (V, V) counts, rows true, columns predicted}."""
    _check_views(samples, model.num_views)
    pred = predict_views(model, samples, batch_size).argmax(1)
    true = np.array([s.view for s in samples])
    confusion = np.zeros((model.num_views, model.num_views), np.int64)
    np.add.at(confusion, (true, pred), 1)
    return {"accuracy": float((pred == true).mean()), "confusion": confusion}


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_viewpoint_model(model: ViewpointNet, path, cfg: ViewpointConfig | None = None) -> Path:
    """Weights and the shape of the network (plus the training config, for the record)."""
    return save_tagged(path, CHECKPOINT_FORMAT, {
        "num_views": model.num_views, "backbone": model.backbone,
        "image_size": model.image_size, "config": asdict(cfg) if cfg else {},
        "model": {k: v.cpu() for k, v in model.state_dict().items()}})


def load_viewpoint_model(path, device: str | torch.device = "cpu") -> ViewpointNet:
    """A classifier saved by save_viewpoint_model; other files (a ReID checkpoint too) are
    refused with a message naming the file."""
    state = load_tagged(path, CHECKPOINT_FORMAT,
                        "a viewpoint classifier checkpoint (`vscr viewpoint train`)")
    model = ViewpointNet(state["num_views"], state["backbone"], state["image_size"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------
# Labelling data sets without view labels


def _data_folder(samples: list[Sample]) -> Path | None:
    """The deepest folder holding every image (None when that is the file-system root)."""
    folder = Path(os.path.commonpath([os.path.dirname(os.path.abspath(s.path))
                                      for s in samples]))
    return None if folder == Path(folder.anchor) else folder


def label_dataset(model: ViewpointNet, data: ReIDDataset | list[Sample], out_path=None, *,
                  data_root=None, batch_size: int = 256, progress: bool = True) -> Path:
    """Predict a view for every training image of `data` (or every sample in a list) and write

    - `out_path` (default results/views/<name>-<V>views.csv): 'path,view,num_views,p_<view>...',
      which `data.with_view_labels` (config field data.view_labels) reads like real labels;
    - beside it, `.txt`: the UAV-VeID one-hot format '<name> f r l r' (or the 3-/2-class
      columns), names relative to the images' common folder, with a header naming the columns.

    Both are written atomically. Writing inside the data set's folder (`data_root`, or the
    folder that holds all its images) is refused: the user's data stay untouched."""
    samples = list(data.train) if isinstance(data, ReIDDataset) else list(data)
    if not samples:
        raise ValueError("no images to label")
    name = data.name if isinstance(data, ReIDDataset) else "samples"
    out = Path(out_path) if out_path else VIEWS_DIR / f"{name}-{model.num_views}views.csv"
    if out.suffix != ".csv":
        raise ValueError(f"{out}: expected a .csv path (the one-hot .txt is written beside it)")
    every = samples + (data.query + data.gallery + data.distractors
                       if isinstance(data, ReIDDataset) else [])
    image_folder = _data_folder(samples)
    for folder in (Path(data_root) if data_root else None, _data_folder(every)):
        if folder is not None and out.resolve().is_relative_to(folder.resolve()):
            raise ValueError(f"{out}: inside the data set's folder {folder}; predicted views "
                             f"are written next to the project's outputs (default {VIEWS_DIR}), "
                             "never into the data")
    names = [os.path.relpath(os.path.abspath(s.path), image_folder) for s in samples]
    spaced = next((n for n in names if any(c.isspace() for c in n)), None)
    if spaced is not None:
        raise ValueError(f"image name {spaced!r} contains white space; the one-hot view format "
                         "is '<name> flags...' separated by white space")

    probs = predict_views(model, samples, batch_size, progress=progress)  # (N, V)
    pred = probs.argmax(1)
    views = VIEW_NAMES[model.num_views]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["path", "view", "num_views", *(f"p_{v}" for v in views)])
    for s, v, p in zip(samples, pred, probs):
        writer.writerow([s.path, int(v), model.num_views, *(f"{x:.4f}" for x in p)])
    onehot = [" ".join(["name", *views])]
    onehot += [" ".join([n, *("1" if k == v else "0" for k in range(len(views)))])
               for n, v in zip(names, pred)]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, table.getvalue().encode())
    atomic_write_bytes(out.with_suffix(".txt"), ("\n".join(onehot) + "\n").encode())
    return out


# ---------------------------------------------------------------------------------------------
# Fig. 6: accuracy against the share of labelled training images


def fraction_curve(dataset: ReIDDataset, fractions=(0.25, 0.5, 0.75, 1.0), seeds=(0, 1, 2),
                   cfg: ViewpointConfig | None = None, test_fraction: float = 0.2,
                   split_seed: int = 0, progress: bool = True):
    """One row per (seed, fraction): accuracy on ONE held-out set of identities (the same for
    every run) after training on `fraction` of the remaining labelled images. For each seed the
    subsets are nested (the first 25 % of one shuffled order, then the first 50 %, ...).
    Columns: num_views, fraction, seed, train_images, test_images, accuracy, confusion (JSON),
    wall_s."""
    import pandas as pd

    cfg = cfg or ViewpointConfig()
    if dataset.num_views == 0:
        raise ValueError(f"{dataset.name} has no view labels; Fig. 6 needs a labelled data set")
    if dataset.num_views < cfg.num_views:
        raise ValueError(f"{dataset.name} labels {dataset.num_views} views; cannot train a "
                         f"{cfg.num_views}-view classifier on it")
    labelled = view_samples(dataset.train, dataset.num_views, cfg.num_views)
    pool, test = split_by_identity(labelled, test_fraction, split_seed)
    rows = []
    runs = tqdm([(s, f) for s in seeds for f in fractions], desc="Fig. 6", disable=not progress)
    for seed, fraction in runs:
        order = np.random.default_rng(seed).permutation(len(pool))
        n = max(1, round(fraction * len(pool)))
        subset = [pool[i] for i in sorted(order[:n])]
        t0 = time.perf_counter()
        fit = train_viewpoint_classifier(subset, replace(cfg, seed=seed), progress=progress)
        result = evaluate_viewpoint(fit.model, test)
        rows.append({"num_views": cfg.num_views, "fraction": fraction, "seed": seed,
                     "train_images": n, "test_images": len(test),
                     "accuracy": result["accuracy"],
                     "confusion": json.dumps(result["confusion"].tolist()),
                     "wall_s": round(time.perf_counter() - t0, 1)})
        runs.set_postfix(acc=f"{result['accuracy']:.3f}")
    return pd.DataFrame(rows)


def plot_fraction_curve(df, out_png, reported: float | None = REPORTED_VERI776_25) -> Path:
    """Accuracy (mean ± std over seeds) against % of training images; the paper's VeRi-776
    figure at 25 % as a reference line."""
    from matplotlib.figure import Figure

    stats = df.groupby("fraction")["accuracy"].agg(["mean", "std"]).fillna(0.0) * 100
    x = stats.index.to_numpy() * 100
    num_views = int(df["num_views"].iloc[0])
    fig = Figure(figsize=(5.5, 4), dpi=150, layout="constrained")
    ax = fig.subplots()
    ax.errorbar(x, stats["mean"], yerr=stats["std"], marker="o", capsize=4, color="tab:blue",
                label=f"measured (synthetic, {num_views} views; mean ± std, "
                      f"{df['seed'].nunique()} seeds)")
    if reported is not None:
        ax.axhline(reported, color="tab:red", ls="--", lw=1.2)
        ax.plot([25], [reported], marker="*", ms=12, color="tab:red", ls="none",
                label=f"reported (VeRi-776, 3 views): {reported:.2f} % at 25 %")
    chance = 100 / num_views
    ax.axhline(chance, color="grey", ls=":", lw=1, label=f"chance ({chance:.0f} %)")
    ax.set(xlabel="labelled training images used (%)", ylabel="view accuracy on held-out ids (%)",
           xticks=x, xlim=(x.min() - 8, x.max() + 8), ylim=(0, 102),
           title="Fig. 6: viewpoint classifier accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, out_png)


def plot_confusion(df, out_png, fraction: float = 0.25) -> Path:
    """Confusion matrix at one fraction, summed over seeds: row-normalised %, with counts."""
    import seaborn as sns
    from matplotlib.figure import Figure

    rows = df[np.isclose(df["fraction"], fraction)]
    if rows.empty:
        raise ValueError(f"no runs at fraction {fraction}; have {sorted(df['fraction'].unique())}")
    counts = sum(np.array(json.loads(c)) for c in rows["confusion"])
    percent = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
    views = VIEW_NAMES[int(rows["num_views"].iloc[0])]
    text = np.array([[f"{p:.1f} %\n({c})" for p, c in zip(pr, cr)]
                     for pr, cr in zip(percent, counts)])
    fig = Figure(figsize=(5, 4.2), dpi=150, layout="constrained")
    ax = fig.subplots()
    sns.heatmap(percent, annot=text, fmt="", cmap="Blues", vmin=0, vmax=100, square=True,
                xticklabels=views, yticklabels=views, cbar_kws={"label": "% of true view"},
                ax=ax, annot_kws={"fontsize": 9})
    ax.set(xlabel="predicted view", ylabel="true view",
           title=f"Viewpoint confusion, {fraction:.0%} of training data\n"
                 f"(synthetic, {rows['seed'].nunique()} seeds summed)")
    return save_figure(fig, out_png)


def run_fig6(preset: str = "quick", synth_seed: int = 0, fractions=(0.25, 0.5, 0.75, 1.0),
             seeds=(0, 1, 2), cfg: ViewpointConfig | None = None,
             out_csv=REPO_ROOT / "results" / "viewpoint_fig6.csv",
             figures_dir=REPO_ROOT / "figures", progress: bool = True):
    """Fig. 6 on the synthetic data: the CSV, its provenance JSON and both figures. The default
    config is FIG6_CONFIG, the one that made the published results."""
    from vscr_core.data import synthetic_dataset

    cfg = cfg or FIG6_CONFIG
    t0 = time.perf_counter()
    ds = synthetic_dataset(preset, seed=synth_seed, progress=progress)
    df = fraction_curve(ds, fractions, seeds, cfg, progress=progress)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_csv, df.to_csv(index=False).encode())
    at25 = df[np.isclose(df["fraction"], 0.25)]["accuracy"] * 100
    provenance = {
        "commit": git_commit(), "command": "vscr viewpoint fig6",
        "data set": ds.name, "synth_preset": preset, "synth_seed": synth_seed,
        "fractions": list(fractions), "seeds": list(seeds), "test_fraction": 0.2,
        "split_seed": 0, "config": asdict(cfg), "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(resolve_device(cfg.device)), "wall_s": round(time.perf_counter() - t0, 1),
        "accuracy_at_25_percent": {"mean": round(float(at25.mean()), 2),
                                   "std": round(float(at25.std()), 2)} if len(at25) else None,
        "reported_veri776_at_25_percent": REPORTED_VERI776_25,
    }
    atomic_write_bytes(out_csv.with_suffix(".json"),
                       (json.dumps(provenance, indent=2) + "\n").encode())
    plot_fraction_curve(df, Path(figures_dir) / "fig6_viewpoint.png")
    plot_confusion(df, Path(figures_dir) / "viewpoint_confusion.png",
                   fraction=min(fractions))
    return df
