"""benchmarks/bench_khoa.py: the real-photo benchmark runs end to end on a subset of the Khoa
sample, stops at its budget, prints its table and writes (and merges) its CSV."""

from __future__ import annotations

import csv
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_khoa.py"
KHOA = ROOT.parent / "shared" / "data" / "khoa-vehicle-reid"

pytestmark = pytest.mark.skipif(not KHOA.is_dir(), reason=f"real-photo sample not at {KHOA}")


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(out: Path, *args: str) -> str:
    # one thread: tiny tensors beside other busy processes wait less
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--recipe", "smoke", "--max-ids", "24", "--threads", "1",
         "--out", str(out), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_subset_run_stops_at_budget_and_writes_its_table(tmp_path):
    out = tmp_path / "khoa.csv"
    # a budget of 0.06 s ends training after the first epoch of the recipe's 2
    stdout = run(out, "--minutes", "0.001")
    assert "train 24 vehicles (48 photos); query 24 (camera 1), gallery 24 (camera 2)" in stdout
    assert "chance: rank-1 4.17 %" in stdout  # one true match among 24
    assert "torch threads" in stdout and "budget reached after epoch 1 of 2" in stdout

    bench = runpy.run_path(str(SCRIPT))
    rows = read(out)
    assert tuple(rows[0]) == bench["COLUMNS"]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert rows[0]["loss_total"] == "" and float(rows[1]["loss_total"]) > 0
    assert float(rows[0]["train_s"]) == 0 < float(rows[1]["train_s"])
    for r in rows:
        assert (r["recipe"], r["epochs"], r["seed"], r["train_ids"]) == ("smoke", "2", "0", "24")
        assert r["threads"] == "1" and r["commit"]
        assert 0 <= float(r["rank1"]) <= float(r["rank5"]) <= 100
        assert 0 < float(r["mAP"]) <= 100

    # another seed is another run: kept beside the first, which a rerun would replace
    run(out, "--minutes", "0.001", "--seed", "1")
    assert [(r["seed"], r["epoch"]) for r in read(out)] == [("0", "0"), ("0", "1"),
                                                            ("1", "0"), ("1", "1")]

    png = tmp_path / "khoa.png"  # the curves of both runs, without training
    assert "wrote" in run(out, "--plot-only", "--plot", str(png)) and png.stat().st_size > 10_000


def test_csv_lists_train_and_val_vehicles_by_camera(tmp_path):
    from vscr_core.data import load_folder

    bench = runpy.run_path(str(SCRIPT))
    bench["write_csv"](tmp_path / "k.csv", KHOA, 30)
    ds = load_folder(KHOA / "images" / "train", csv=tmp_path / "k.csv")
    assert (ds.num_train_pids, len(ds.train), len(ds.query), len(ds.gallery)) == (30, 60, 30, 30)
    assert {s.camid for s in ds.query} == {1} and {s.camid for s in ds.gallery} == {2}
    assert {s.pid for s in ds.query} == {s.pid for s in ds.gallery}

    def names(samples):  # the identity, <type>_<NNNN>; training pids are renumbered from 0
        return {Path(s.path).name.rsplit("_", 1)[0] for s in samples}

    assert not names(ds.train) & names(ds.query)
    kinds = {n.split("_")[0] for n in names(ds.train)}
    assert kinds == {"bus", "car", "motorcycle", "truck"}  # a subset spreads over every type


def test_evaluating_every_epoch_leaves_the_weights_unchanged(tmp_path):
    from vscr_core import train
    from vscr_core.config import profile

    bench = runpy.run_path(str(SCRIPT))
    bench["write_csv"](tmp_path / "k.csv", KHOA, 12)
    cfg = profile("quick", **{**bench["BASE"], **bench["RECIPES"]["smoke"][1],
                              "data.root": str(KHOA / "images" / "train"),
                              "data.csv": str(tmp_path / "k.csv")})
    ds = train.load_data(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same reduction order in both runs
    try:
        plain = train.fit(cfg, tmp_path / "plain", dataset=ds, progress=False).model
        clock = bench["EpochClock"](cfg, ds, float("inf"), lambda row: None)
        hooked = train.fit(cfg, tmp_path / "hooked", dataset=ds, progress=False,
                           on_epoch=clock).model
    finally:
        torch.set_num_threads(threads)
    assert [r["epoch"] for r in clock.rows] == [1, 2]
    a, b = plain.state_dict(), hooked.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
