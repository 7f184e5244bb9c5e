"""fit(): train VSCRNet with the losses of Eq. 11 on PK batches (Sect. 5.2.2).

The loop checkpoints after every epoch (atomically) and reseeds every random source from
(seed, epoch) at the start of each epoch, so a run killed at any point and resumed from its last
checkpoint ends with the same weights as one that was never interrupted. Under `torchrun` the same
code runs with DistributedDataParallel (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from vscr_core.config import Config, TrainConfig, lr_milestones
from vscr_core.data.sampler import PKBatchSampler
from vscr_core.data.types import ReIDDataset, Sample, merge_view
from vscr_core.files import atomic_write_bytes, load_tagged, save_tagged
from vscr_core.losses import grl_ramp, vscr_loss
from vscr_core.model import VSCRNet
from vscr_core.runtime import (
    amp_settings,
    autocast,
    describe_hardware,
    resolve_device,
    seed_everything,
)

CHECKPOINT_FORMAT = "vscr-checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.pt"
DIVERGED_NAME = "diverged.json"
# The version of what training does with a config: raise it whenever the same config would train
# to different weights (initialisation order, loss, sampler, schedule), never for a move of code.
# It is part of every run folder's name, and fit() refuses a checkpoint of another version, so a
# cached run from different training code is never reused silently.
# 2: paired initialisation across variants, Eq. 6 reduction as a field, per-epoch validation.
TRAINING_SEMANTICS = 2


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the run folder keeps the last good checkpoint and a record."""


@dataclasses.dataclass
class FitResult:
    model: VSCRNet  # the trained network (unwrapped from DDP), in eval mode
    history: list[dict]  # one row per epoch: epoch, lr, mean losses, images/s
    checkpoint: Path


# ---------------------------------------------------------------------------------------------
# Data


def load_data(cfg: Config, **protocol) -> ReIDDataset:
    """The data set a config names: the synthetic default or a real layout under data.root.
    `protocol` goes to the loader (e.g. split="test" for UAV-VeID, subset="large" for VERI-Wild)."""
    from vscr_core import data

    d = cfg.data
    if d.dataset == "synth":
        ds = data.synthetic_dataset(preset=d.synth_preset, seed=d.synth_seed, root=d.root,
                                    **protocol)
    else:
        if d.root is None:
            raise ValueError(f"config field data.root: data set {d.dataset!r} needs its folder")
        if d.csv is not None:
            if d.dataset != "folder":
                raise ValueError(f"config field data.csv: only the folder layout reads a CSV, "
                                 f"not {d.dataset!r}")
            protocol = {"csv": d.csv, **protocol}
        ds = data.load_dataset(d.dataset, d.root, **protocol)
    if d.view_labels is not None:
        ds = data.with_view_labels(ds, d.view_labels)
    return ds


def view_classes(cfg: Config) -> int:
    """The view classes of the data set `cfg` reads: fixed per data set (the paper's Sect. 4.2),
    or for a folder of crops those of its CSV's view column or of its view-label file."""
    from vscr_core.data import dataset_spec

    fixed = dataset_spec(cfg.data.dataset).num_views
    if fixed is not None:
        return fixed
    d = cfg.data  # a folder: its files' state joins the key, so an edited CSV is read again
    stamps = tuple(os.stat(f).st_mtime_ns if f and os.path.exists(f) else None
                   for f in (d.csv, d.view_labels))
    return _folder_view_classes(cfg, stamps)


@functools.lru_cache(maxsize=32)
def _folder_view_classes(cfg: Config, stamps: tuple) -> int:
    """view_classes of a folder of crops, read once per config and file state (a notebook asks
    for it with every variant it builds, and a large CSV takes seconds to read)."""
    return load_data(cfg).num_views


def missing_views_message(cfg: Config, name: str) -> str:
    """What to run when a model with the view adversary meets a data set without view labels:
    the paper's route, a viewpoint classifier that labels it, as two commands for this data."""
    d = cfg.data
    views = view_classes(cfg) or 3
    where = f"--dataset {d.dataset} --root {d.root}" + (f" --csv {d.csv}" if d.csv else "")
    labels = f"results/views/{d.dataset}-{views}views.csv"
    return (
        f"config field model.view_adversary: {name} has no view labels, and the view adversary "
        f"needs one per training image. Label it with a viewpoint classifier, trained on a data "
        f"set that has view labels (here the synthetic one):\n"
        f"  vscr viewpoint train --dataset synth --num-views {views} --out views-{views}.pt\n"
        f"  vscr viewpoint label {where} --checkpoint views-{views}.pt --out {labels}\n"
        f"then train with --set data.view_labels={labels} (a notebook: -p view_labels {labels}), "
        f"or without the adversary: --set model.view_adversary=False"
    )


def training_samples(cfg: Config, ds: ReIDDataset) -> list[Sample]:
    """Training samples with view labels in the model's encoding; checks what the data allow."""
    m, t = cfg.model, cfg.train
    if ds.num_train_pids < t.ids_per_batch:
        raise ValueError(
            f"config field train.ids_per_batch: P = {t.ids_per_batch} but {ds.name} has only "
            f"{ds.num_train_pids} training identities"
        )
    if not m.view_adversary:
        return list(ds.train)
    if ds.num_views == 0:
        raise ValueError(missing_views_message(cfg, ds.name))
    if m.num_views > ds.num_views:
        raise ValueError(
            f"config field model.num_views: {m.num_views} view classes asked for, but {ds.name} "
            f"labels only {ds.num_views}"
        )
    return [s._replace(view=merge_view(s.view, ds.num_views, m.num_views)) for s in ds.train]


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    save_tagged(path, CHECKPOINT_FORMAT, state)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by fit(); anything else is refused with a message naming the file."""
    return load_tagged(path, CHECKPOINT_FORMAT, "a vscr checkpoint")


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> VSCRNet:
    """The network stored in a fit() checkpoint, in eval mode."""
    state = load_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    # The stored weights replace any initialisation, so no ImageNet file is needed here.
    model = VSCRNet.from_config(dataclasses.replace(cfg.model, pretrained=None),
                                state["num_ids"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def features(model, samples, cfg: Config, device=None, progress: bool = True) -> torch.Tensor:
    """ReID features (N, D) of `samples` at cfg's input size, on cfg's device unless given."""
    from vscr_core import evaluate
    from vscr_core.data.transforms import ImageDataset

    device = resolve_device(cfg.train.device) if device is None else device
    images = ImageDataset(samples, image_size=cfg.data.image_size, train=False)
    return evaluate.extract_features(model, images, batch_size=128, device=device,
                                     num_workers=cfg.data.num_workers, progress=progress)


def validation_rank1(model: VSCRNet, cfg: Config, ds: ReIDDataset, device) -> float:
    """Rank-1 (%) of `model` on the query/gallery of a validation split (no junk rule)."""
    from vscr_core import evaluate

    was_training = model.training
    model.eval()
    q = features(model, ds.query, cfg, device, progress=False)
    g = features(model, ds.gallery, cfg, device, progress=False)
    model.train(was_training)
    result = evaluate.evaluate_uav_veid(q, g, [s.pid for s in ds.query],
                                        [s.pid for s in ds.gallery])
    return 100 * result.as_dict()["rank1"]


def finished_record(path: Path, epochs: int) -> list[dict] | None:
    """The rows of the log at `path` when it records all `epochs` epochs of a finished run, else
    None (no log, or a run still training)."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows if rows and int(rows[-1]["epoch"]) == epochs else None


def _compare_last_epoch(retrained: dict, recorded: dict) -> str:
    """'key retrained (record recorded)' for the total loss and validation rank-1 where both
    logs have them: how closely a retrain on this machine repeats the recorded run."""
    keys = [k for k in ("loss_total", "val_rank1") if k in retrained and recorded.get(k)]
    return ", ".join(f"{k} {retrained[k]:.3f} (record {float(recorded[k]):.3f})" for k in keys)


def write_log(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    columns = list(dict.fromkeys(k for row in history for k in row))
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(path, buf.getvalue().encode())


# ---------------------------------------------------------------------------------------------
# The loop


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size), initialising the process group under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), world_size


def train_step(net, model: VSCRNet, optimizer, scaler, images, pids, views, t: TrainConfig,
               device: torch.device, amp_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """One optimisation step of Eq. 11: forward under autocast (`net`: the model or its DDP
    wrapper), the weighted losses, backward through the gradient scaler (a no-op unless fp16),
    the optimiser's step. Returns the loss parts, still on the device (reading them syncs)."""
    with autocast(device, amp_dtype):
        out = net(images)
    loss, parts = vscr_loss(
        out, pids, views, use_mscl=model.uses_mscl, margin=t.triplet_margin,
        triplet_weight=t.triplet_weight, view_weight=t.view_weight,
        mscl_weight=t.mscl_weight, mscl_reduction=t.mscl_reduction,
    )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return parts


def fit(
    cfg: Config,
    out_dir: str | Path,
    dataset: ReIDDataset | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict, Path], None] | None = None,
) -> FitResult:
    """Train `cfg` into `out_dir` (checkpoint.pt, log.csv, config.json), resuming a run that a
    previous call left unfinished there. `dataset` defaults to the one the config names.
    `on_epoch(log row, checkpoint path)` runs on rank 0 after each epoch's checkpoint is written
    (e.g. to evaluate it); it gets no handle on the training state, and every random source is
    reseeded at the next epoch's start, so the weights are those of a run without it."""
    from tqdm.auto import tqdm  # here: train_step serves GPU checks that run without tqdm

    from vscr_core.data.transforms import ImageDataset

    out_dir = Path(out_dir)
    t = cfg.train
    rank, local_rank, world_size = _distributed()
    device = resolve_device(t.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
    amp_dtype, channels_last = amp_settings(device, t.precision)
    hardware = describe_hardware(device)

    # 1. Data, checked before anything is built or written.
    from vscr_core.data import dataset_spec

    ds = dataset if dataset is not None else load_data(
        cfg, **dataset_spec(cfg.data.dataset).training_protocol(t.val_split))
    samples = training_samples(cfg, ds)
    num_ids = ds.num_train_pids
    train_set = ImageDataset(
        samples, image_size=cfg.data.image_size, train=True,
        num_views=cfg.model.num_views if cfg.model.view_adversary else 0,
        random_erasing=cfg.data.random_erasing, cache=cfg.data.cache_images,
    )
    sampler = PKBatchSampler([s.pid for s in samples], t.ids_per_batch, t.images_per_id,
                             seed=t.seed, rank=rank, world_size=world_size)
    loader_seed = torch.Generator()
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=sampler, num_workers=cfg.data.num_workers,
        generator=loader_seed, pin_memory=device.type == "cuda",
    )

    # the data set loaded above holds the validation split, unless it was given
    val_ds = None if t.val_split is None else (
        ds if dataset is None else load_data(cfg, split=t.val_split))

    # 2. Model, optimiser and schedule; resume from the last complete epoch if there is one.
    ckpt_path = out_dir / CHECKPOINT_NAME
    if (out_dir / DIVERGED_NAME).exists():
        raise TrainingDiverged(f"{out_dir}: this run diverged before "
                               f"({(out_dir / DIVERGED_NAME).read_text().strip()})")
    resume = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if resume is not None and Config.from_dict(resume["config"]).digest() != cfg.digest():
        raise ValueError(f"{ckpt_path} belongs to a different config; use another out_dir")
    if resume is not None and resume.get("training_semantics", 1) != TRAINING_SEMANTICS:
        raise ValueError(
            f"{ckpt_path} was trained by training semantics {resume.get('training_semantics', 1)}"
            f", this code is {TRAINING_SEMANTICS}: its weights would differ; use another out_dir")
    seed_everything(t.seed)
    model = VSCRNet.from_config(cfg.model, num_ids).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                                weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(lr_milestones(t)), gamma=0.1)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history: list[dict] = []
    start_epoch = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        history, start_epoch = resume["history"], resume["epoch"]
    # A finished run's log.csv without its checkpoint: a record committed without the weights
    # (git keeps no checkpoints). Retraining gives the weights back; the record, which the run's
    # committed metrics came from, is kept as it is, and the retrain is compared with it.
    record = finished_record(out_dir / "log.csv", t.epochs) if start_epoch < t.epochs else None
    net = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / "config.json", json.dumps(cfg.to_dict(), indent=2).encode())

    # 3. Epochs: reseed, run PK batches, log, checkpoint.
    for epoch in range(start_epoch, t.epochs):
        epoch_seed = t.seed * 1_000_003 + epoch
        seed_everything(epoch_seed)
        loader_seed.manual_seed(epoch_seed)
        sampler.set_epoch(epoch)
        net.train()
        sums: dict[str, torch.Tensor] = {}
        n_images, tic = 0, time.perf_counter()
        bar = tqdm(loader, desc=f"{cfg.name} epoch {epoch + 1}/{t.epochs}", leave=False,
                   disable=not progress or rank != 0)
        for step, (images, pids, _camids, views, _index) in enumerate(bar, start=1):
            if t.grl_ramp:
                # the fraction of the ramp's span trained (past 1 in a continued run)
                done = (epoch + (step - 1) / len(loader)) / (t.grl_ramp_epochs or t.epochs)
                model.grl_lambda = cfg.model.grl_lambda * grl_ramp(done)
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            pids, views = pids.to(device), views.to(device)
            parts = train_step(net, model, optimizer, scaler, images, pids, views, t, device,
                               amp_dtype)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n_images += len(images)
            if step % 5 == 0 or step == len(loader):  # the only host syncs of the loop
                means = {k: float(v) / step for k, v in sums.items()}
                bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()})
                if not math.isfinite(means["total"]):  # one non-finite step poisons the sum
                    record = {"epoch": epoch + 1, "detected_at_step": step, **means}
                    if rank == 0:
                        atomic_write_bytes(out_dir / DIVERGED_NAME, json.dumps(record).encode())
                    raise TrainingDiverged(f"{cfg.name}: non-finite loss in epoch {epoch + 1} "
                                           f"by step {step} ({record}); recorded in {out_dir}")
        if not sums:
            raise ValueError("an epoch produced no PK batch; the training set is too small")
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
        row.update({f"loss_{k}": float(v) / step for k, v in sums.items()})
        row["images_per_s"] = n_images * world_size / (time.perf_counter() - tic)
        if val_ds is not None and rank == 0:
            row["val_rank1"] = validation_rank1(model, cfg, val_ds, device)
        row["hardware"] = hardware  # per epoch: a resumed run may finish on another machine
        history.append(row)
        scheduler.step()
        if rank == 0:
            save_checkpoint(ckpt_path, {
                "config": cfg.to_dict(), "epoch": epoch + 1,
                "num_ids": num_ids, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "history": history,
                "training_semantics": TRAINING_SEMANTICS,
            })
            if record is None:
                write_log(out_dir / "log.csv", history)
            if on_epoch is not None:
                on_epoch(dict(row), ckpt_path)
        if progress and rank == 0:
            losses = ", ".join(f"{k[5:]} {v:.3f}" for k, v in row.items()
                               if k.startswith("loss_") and "_b" not in k)
            val = f", val rank-1 {row['val_rank1']:.1f} %" if "val_rank1" in row else ""
            tqdm.write(f"{cfg.name} epoch {epoch + 1}/{t.epochs}: {losses}{val}, "
                       f"{row['images_per_s']:.0f} img/s")
    if record is not None and rank == 0:
        print(f"{cfg.name}: retrained for its weights, its log.csv record kept; last epoch "
              f"{_compare_last_epoch(history[-1], record[-1])}", flush=True)
    if world_size > 1:
        dist.barrier()
    return FitResult(model.eval(), history, ckpt_path)
