"""Learning on real pixels: the quick profile's baseline trained on real photographs from random
initialisation, rank-1 and mAP against training time.

Data: the Khoa vehicle ReID sample in ../shared/data/khoa-vehicle-reid beside the clone (real
road-camera photographs, Apache-2.0, see its README.md; read in place, never written). Training:
the vehicles of train.txt (405, one photograph per camera each). Evaluation: the vehicles of
val.txt (102), query = camera 1, gallery = camera 2, so every query has exactly one true match
among 102 (chance rank-1 about 1 %).

Everything runs through the project's own code: a folder-layout CSV (path,pid,camid,split) in a
temporary folder, `config.profile("quick", data.dataset=folder, ...)` with the baseline's model
(d = 1, no view adversary) and a recipe's overrides, `train.fit`, and `experiments.evaluate_model`
after every epoch, through fit's on_epoch hook on the checkpoint it writes (see `EpochClock`):
the trained weights are bitwise those of fit without it (tests/test_bench_khoa.py), and
evaluation time is kept off the training clock. Epoch 0 is the
random initialisation fit starts from. epoch_s is one epoch's training time (epoch 1's includes
fit's setup and decoding the photos into the RAM cache), train_s the cumulative training time;
rank1, rank5 and mAP are in %. --out writes the rows (with the run's recipe, epochs, seed,
training vehicles, threads, CPU and commit) into a CSV, replacing an earlier run with the same
recipe, epochs, seed and vehicles and keeping the others.

On a busy machine use --threads 1: with other processes on both cores, two torch threads wait on
each other at every barrier (measured with a load of 7 on 2 cores: a 64 x 64 training step of
32 photos took 2.4 s with two threads, 0.56 s with one).

    .venv/bin/python benchmarks/bench_khoa.py                  # recipe quick: 3 short epochs
    .venv/bin/python benchmarks/bench_khoa.py --recipe r128x96 --minutes 15 [--epochs N] \\
        --out results/khoa_benchmark.csv
    .venv/bin/python benchmarks/bench_khoa.py --plot-only --out results/khoa_benchmark.csv \\
        --plot figures/khoa_benchmark.png
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from pathlib import Path

import torch

from vscr_core.config import Config, lr_milestones, profile
from vscr_core.experiments import evaluate_model, measured_chance
from vscr_core.files import atomic_write_bytes, git_commit
from vscr_core.model import VSCRNet
from vscr_core.runtime import describe_hardware, seed_everything
from vscr_core.train import fit, load_data, load_trained_model

KHOA = Path(__file__).resolve().parents[2] / "shared" / "data" / "khoa-vehicle-reid"

# The baseline on the folder layout. Every vehicle has exactly two photographs, so K = 2: the
# sampler fills a larger K by drawing the same two photographs again (data/sampler.py), which
# costs compute for nothing but another augmentation of them. P = 16 keeps the quick profile's
# 32 images a batch; an epoch is 405 // 16 = 25 batches (5 vehicles sit out, a different 5 each
# epoch).
BASE = {
    "data.dataset": "folder",
    "model.view_adversary": False,
    "model.dilations": (1,),
    "train.ids_per_batch": 16,
    "train.images_per_id": 2,
}

# name -> (why, overrides on the quick profile and BASE). The r* recipes fill 15 minutes of
# training on 2 quiet cores of an AMD EPYC (measured: 5.8 s an epoch at 96 x 64, 10.8 s at
# 128 x 96; results/khoa_benchmark.csv); on another machine check epoch_s and set --epochs so
# that the schedule ends within the budget. r64 and r96x64_plain are not measured yet.
RECIPES: dict[str, tuple[str, dict]] = {
    "quick": ("the quick profile as it is: 64 x 64, 3 epochs, lr drop after 2", {}),
    "smoke": ("the test's: 32 x 32, 2 small epochs, seconds on a subset",
              {"data.image_size": (32, 32), "train.epochs": 2, "train.lr_steps": (1,),
               "train.ids_per_batch": 4}),
    "r64": ("cheapest pixels, most epochs: 64 x 64, 220 epochs at lr 0.01 and the last 30 at "
            "0.001; random erasing against memorising two photos per vehicle",
            {"train.epochs": 220, "train.lr_steps": (190,), "data.random_erasing": True}),
    "r96x64": ("the photos' own shape (median 89 w x 123 h): 96 x 64 (H x W) keeps more detail "
               "than 64 x 64; 155 epochs, the last 23 at 0.001, random erasing",
               {"data.image_size": (96, 64), "train.epochs": 155, "train.lr_steps": (132,),
                "data.random_erasing": True}),
    "r96x64_plain": ("r96x64 without random erasing: what the augmentation is worth",
                     {"data.image_size": (96, 64), "train.epochs": 155, "train.lr_steps": (132,),
                      "data.random_erasing": False}),
    "r128x96": ("more detail, fewer epochs: 128 x 96 (H x W), 80 epochs, the last 13 at 0.001, "
                "random erasing (the best of the measured recipes)",
                {"data.image_size": (128, 96), "train.epochs": 80, "train.lr_steps": (67,),
                 "data.random_erasing": True}),
}

# A run is (recipe, epochs, seed, training vehicles); its rows replace that run's rows in an
# existing --out file and leave the other runs there, so a whole search can write to one file.
RUN_KEY = ("recipe", "epochs", "seed", "train_ids")
COLUMNS = (*RUN_KEY, "epoch", "lr", "loss_total", "epoch_s", "train_s", "rank1", "rank5", "mAP",
           "threads", "cpu", "commit")


class BudgetReached(Exception):
    """Raised after the epoch whose end crosses the time budget (its checkpoint is complete)."""


class EpochClock:
    """fit's on_epoch hook: after each epoch's checkpoint is written, the network is read back
    from it and evaluated. Only the training clock sees the time between hooks; evaluation time
    is measured and subtracted."""

    def __init__(self, cfg: Config, ds, budget_s: float, on_row):
        self.cfg, self.ds, self.budget_s, self.on_row = cfg, ds, budget_s, on_row
        self.rows: list[dict] = []  # one per trained epoch
        self.eval_s = 0.0
        self.start = self.last = time.perf_counter()

    def __call__(self, log: dict, checkpoint: Path) -> None:
        now = time.perf_counter()
        epoch_s, train_s = now - self.last, now - self.start - self.eval_s
        metrics = evaluate_model(load_trained_model(checkpoint), self.cfg, self.ds,
                                 progress=False)
        row = {"epoch": log["epoch"], "lr": log["lr"], "loss_total": log["loss_total"],
               "epoch_s": epoch_s, "train_s": train_s, "rank1": 100 * metrics["rank1"],
               "rank5": 100 * metrics["rank5"], "mAP": 100 * metrics["mAP"]}
        self.rows.append(row)
        self.on_row(row)
        self.last = time.perf_counter()
        self.eval_s += self.last - now
        if train_s >= self.budget_s:
            raise BudgetReached


def spread(items: list, n: int | None) -> list:
    """n items evenly spaced over the sorted list (so a subset keeps every vehicle type)."""
    if n is None or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def vehicles(listing: Path) -> list[str]:
    """The identities (`<type>_<NNNN>`) of train.txt or val.txt; each must have both cameras."""
    cams: dict[str, set[str]] = {}
    for name in listing.read_text().split():
        ident, _, cam = name.removesuffix(".jpg").rpartition("_")
        cams.setdefault(ident, set()).add(cam)
    odd = [i for i, c in cams.items() if c != {"cam1", "cam2"}]
    if odd:
        raise SystemExit(f"{listing}: {odd[0]} has photographs {sorted(cams[odd[0]])}; "
                         "expected cam1 and cam2")
    return sorted(cams)


def write_csv(path: Path, source: Path, max_ids: int | None) -> None:
    """The folder layout's CSV: paths relative to source/images/train, pid = the identity."""
    rows = [("path", "pid", "camid", "split")]
    for ident in spread(vehicles(source / "train.txt"), max_ids):
        rows += [(f"{ident}_cam{c}.jpg", ident, c, "train") for c in (1, 2)]
    for ident in spread(vehicles(source / "val.txt"), max_ids):
        rows += [(f"{ident}_cam1.jpg", ident, 1, "query"),
                 (f"{ident}_cam2.jpg", ident, 2, "gallery")]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def write_rows(path: Path, rows: list[dict]) -> None:
    """rows into the CSV at `path`, replacing the rows of the same run (RUN_KEY) and keeping the
    other runs'; atomically (temp file + rename)."""
    key = tuple(str(rows[0][k]) for k in RUN_KEY)
    kept = []
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise SystemExit(f"{path}: columns {reader.fieldnames}; expected {COLUMNS} "
                                 "(another file? give another --out)")
            kept = [r for r in reader if tuple(r[k] for k in RUN_KEY) != key]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept)
    writer.writerows({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                     for r in rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def initial_row(cfg: Config, ds) -> dict:
    """Epoch 0: the randomly initialised network fit starts from (fit seeds with train.seed and
    then builds the model, as here), i.e. what random convolutional features score already."""
    seed_everything(cfg.train.seed)
    model = VSCRNet.from_config(cfg.model, ds.num_train_pids)
    metrics = evaluate_model(model, cfg, ds, progress=False)
    return {"epoch": 0, "lr": cfg.train.lr, "loss_total": None,
            "epoch_s": 0.0, "train_s": 0.0, "rank1": 100 * metrics["rank1"],
            "rank5": 100 * metrics["rank5"], "mAP": 100 * metrics["mAP"]}


def fmt(row: dict) -> str:
    loss = "-" if row["loss_total"] is None else f"{row['loss_total']:.3f}"
    return (f"{row['epoch']:5d} {row['lr']:8.4f} {loss:>8s} {row['epoch_s']:8.1f} "
            f"{row['train_s']:8.1f} {row['rank1']:7.2f} {row['rank5']:7.2f} {row['mAP']:7.2f}")


def plot_runs(csv_path: Path, png: Path) -> Path:
    """Rank-1 and mAP against training time, one line per run of the CSV, chance dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from matplotlib.figure import Figure

    from vscr_core.files import save_figure

    df = pd.read_csv(csv_path)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("rank1", "mAP"), strict=True):
        for key, run in df.groupby(list(RUN_KEY), sort=False):
            recipe, epochs, seed, _ = key
            ax.plot(run["train_s"] / 60, run[metric], lw=1.2,
                    label=f"{recipe}, {epochs} epochs, seed {seed}")
        ax.set(xlabel="training time (min)", ylabel=f"{metric} (%)", ylim=(0, 100),
               title=f"{metric} on val.txt (102 queries)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Khoa sample, from random initialisation ({df['cpu'].iloc[0]}, "
                 f"{df['threads'].iloc[0]} threads)")
    return save_figure(fig, png)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--recipe", default="quick", choices=RECIPES,
                        help="; ".join(f"{k}: {why}" for k, (why, _) in RECIPES.items()))
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="training budget: stop after the epoch that crosses it")
    parser.add_argument("--epochs", type=int, default=None,
                        help="the recipe's schedule stretched to this many epochs (its lr drops "
                        "move in proportion)")
    parser.add_argument("--max-ids", type=int, default=None,
                        help="at most this many training and this many evaluation vehicles")
    parser.add_argument("--seed", type=int, default=0, help="train.seed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: "
                        "torch's, one per core)")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the per-epoch rows")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="draw every run of the --out CSV (after this one, if any)")
    parser.add_argument("--plot-only", action="store_true", help="draw --plot, train nothing")
    args = parser.parse_args(argv)
    if args.plot is not None and args.out is None:
        raise SystemExit("--plot draws the runs of the --out CSV: give --out too")
    if args.plot_only:
        if args.plot is None:
            raise SystemExit("--plot-only needs --plot PNG and --out CSV")
        print(f"wrote {plot_runs(args.out, args.plot)}")
        return []
    if not (KHOA / "train.txt").is_file():
        raise SystemExit(f"the Khoa sample is not at {KHOA} (expected train.txt, val.txt and "
                         "images/train/ there, beside the clone)")
    if args.max_ids is not None and args.max_ids < 2:
        raise SystemExit(f"--max-ids {args.max_ids}: expected at least 2 vehicles")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    why, recipe = RECIPES[args.recipe]

    with tempfile.TemporaryDirectory(prefix="bench_khoa-") as tmp:
        data_csv = Path(tmp) / "khoa.csv"
        write_csv(data_csv, KHOA, args.max_ids)
        cfg = profile("quick", **{
            **BASE, "data.root": str(KHOA / "images" / "train"), "data.csv": str(data_csv),
            "train.seed": args.seed, **recipe})
        if args.epochs is not None:
            scale = args.epochs / cfg.train.epochs
            cfg = cfg.override(**{"train.epochs": args.epochs, "train.lr_steps": tuple(
                max(1, round(s * scale)) for s in lr_milestones(cfg.train))})
        ds = load_data(cfg)
        chance = measured_chance(cfg)
        t = cfg.train
        print(f"recipe {args.recipe}: {why}")
        print(f"  {cfg.model.backbone} d=1 from random init, {cfg.data.image_size[0]} x "
              f"{cfg.data.image_size[1]} px, P x K = {t.ids_per_batch} x {t.images_per_id}, "
              f"{t.epochs} epochs, lr {t.lr} x 0.1 after {list(lr_milestones(t))}, random "
              f"erasing {'on' if cfg.data.random_erasing else 'off'}, seed {t.seed}")
        print(f"  train {ds.num_train_pids} vehicles ({len(ds.train)} photos); query "
              f"{len(ds.query)} (camera 1), gallery {len(ds.gallery)} (camera 2)")
        print(f"  chance: rank-1 {100 * chance['rank1']:.2f} %, mAP {100 * chance['mAP']:.2f} %")
        cpu = describe_hardware(torch.device("cpu"))
        print(f"  CPU: {cpu}, {torch.get_num_threads()} torch threads; budget {args.minutes:g} "
              "min of training")
        print(f"{'epoch':>5s} {'lr':>8s} {'loss':>8s} {'epoch_s':>8s} {'train_s':>8s} "
              f"{'rank1':>7s} {'rank5':>7s} {'mAP':>7s}   (rank and mAP in %)", flush=True)
        first = initial_row(cfg, ds)
        print(fmt(first), flush=True)

        clock = EpochClock(cfg, ds, 60 * args.minutes, lambda row: print(fmt(row), flush=True))
        try:
            fit(cfg, Path(tmp) / "run", dataset=ds, progress=False, on_epoch=clock)
            stopped = f"all {t.epochs} epochs"
        except BudgetReached:
            stopped = f"budget reached after epoch {len(clock.rows)} of {t.epochs}"
    wall = time.perf_counter() - clock.start
    rows = [first, *clock.rows]
    best = max(rows, key=lambda r: r["rank1"])
    last = rows[-1]
    print(f"{stopped}: training {last['train_s']:.0f} s, wall {wall:.0f} s with evaluation; "
          f"final rank-1 {last['rank1']:.2f} %, mAP {last['mAP']:.2f} % (best rank-1 "
          f"{best['rank1']:.2f} % at epoch {best['epoch']})")
    if args.out is not None:
        run = {"recipe": args.recipe, "epochs": t.epochs, "seed": t.seed,
               "train_ids": ds.num_train_pids, "threads": torch.get_num_threads(), "cpu": cpu,
               "commit": git_commit()}
        write_rows(args.out, [{**run, **r} for r in rows])
        print(f"wrote {args.out}")
    if args.plot is not None:
        print(f"wrote {plot_runs(args.out, args.plot)}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
