"""The viewpoint classifier (Sect. 5.2.1) and view labels for data sets without any.

VSCR's view adversary needs a view label per training image. UAV-VeID gives them (4 classes:
front, rear, left, right); VeRi-776, VERI-Wild (3: front, side, rear) and VehicleID (2: front,
rear) do not, so the paper trains a small classifier on a labelled subset and labels the rest.

    fit = train_viewpoint_classifier(view_samples(ds.train, ds.num_views, 3), ViewpointConfig(3))
    label_dataset(fit.model, other_ds)            # -> results/views/<name>-3views.csv (+ .txt)

Coarser classifiers are trained on merged labels (types.merge_view): left and right become side;
for 2 classes a side view has no counterpart and is dropped from that classifier's training and
test images. The paper's classifier is VGG_CNN_M_1024; a ResNet-18 trunk at 64x64 does the same
job here ("viewpoint recognition is not a challenging task", Sect. 5.2.1). Crops are padded to a
square first, keeping the box shape. Fig. 6 (accuracy against the share of labelled images) is
drawn by vscr_core/paper/viewpoint_curve.py.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from vscr_core.config import ViewpointConfig
from vscr_core.data.transforms import ImageDataset
from vscr_core.data.types import UNKNOWN, VIEW_NAMES, ReIDDataset, Sample, merge_view
from vscr_core.files import (
    REPO_ROOT,
    atomic_write_bytes,
    load_tagged,
    save_tagged,
)
from vscr_core.model import BACKBONES, load_imagenet_weights
from vscr_core.runtime import amp_settings, autocast, resolve_device, seed_everything

VIEWS_DIR = REPO_ROOT / "results" / "views"  # where predicted labels go by default
CHECKPOINT_FORMAT = "vscr-viewpoint-v1"


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
