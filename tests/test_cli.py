"""The `vscr` command line end to end on the smoke data: train, eval, extract, search, and the
cached runs of experiments.run."""

import csv
import json
import sys

import pytest
import torch

from vscr_core.cli import main, parse_overrides
from vscr_core.config import profile
from vscr_core.experiments import run, run_dir
from vscr_core.train import TRAINING_SEMANTICS


def test_overrides_parse_python_literals_and_bare_strings():
    assert parse_overrides(["model.dilations=1,2", "train.lr=0.1", "model.backbone=resnet18",
                            "data.root=/x/y"]) == {
        "model.dilations": (1, 2), "train.lr": 0.1, "model.backbone": "resnet18",
        "data.root": "/x/y"}
    with pytest.raises(SystemExit, match="key=value"):
        parse_overrides(["model.dilations"])


@pytest.fixture(scope="module")
def trained(smoke_synth, tmp_path_factory):
    """One smoke VSCR run through experiments.run (1 epoch), shared by the CLI tests."""
    runs = tmp_path_factory.mktemp("runs")
    cfg = profile("smoke", **{"data.root": str(smoke_synth), "train.epochs": 1})
    metrics = run(cfg, runs_dir=runs, progress=False)
    return cfg, runs, metrics


def test_run_evaluates_and_reuses_its_cached_result(trained):
    cfg, runs, metrics = trained
    folder = run_dir(cfg, runs)
    assert folder.name == f"smoke-{cfg.digest()}-t{TRAINING_SEMANTICS}"
    assert 0.0 <= metrics["rank1"] <= metrics["rank5"] <= 1.0 and 0.0 < metrics["mAP"] <= 1.0
    assert metrics["num_skipped"] == 0 and metrics["num_queries"] > 0
    cached = json.loads((folder / "metrics-val.json").read_text())
    assert cached == metrics
    assert run(cfg, runs_dir=runs, progress=False) == metrics  # served from the cache


def test_eval_extract_and_search_commands(trained, smoke_synth, tmp_path, capsys):
    cfg, runs, _ = trained
    ckpt = run_dir(cfg, runs) / "checkpoint.pt"
    main(["eval", "--checkpoint", str(ckpt), "--protocol", "split=test", "--distractors", "5"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["data"].endswith("-test") and printed["num_queries"] > 0

    for part in ("gallery", "query"):
        main(["extract", "--checkpoint", str(ckpt), "--images",
              str(smoke_synth / f"images_{part}_test"), "--out", str(tmp_path / f"{part}.pt")])
    gallery = torch.load(tmp_path / "gallery.pt", weights_only=True)
    assert gallery["feats"].shape == (len(gallery["paths"]), 512)
    main(["search", "--gallery", str(tmp_path / "gallery.pt"), "--query",
          str(tmp_path / "query.pt"), "-k", "3", "--out", str(tmp_path / "top.csv")])
    rows = list(csv.DictReader(open(tmp_path / "top.csv")))
    queries = torch.load(tmp_path / "query.pt", weights_only=True)["paths"]
    assert len(rows) == 3 * len(queries)
    first = [float(r["distance"]) for r in rows[:3]]
    assert first == sorted(first) and rows[0]["gallery"] in gallery["paths"]


def test_errors_exit_with_a_message_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vscr"])
    bogus = tmp_path / "nothing.pt"
    bogus.write_bytes(b"junk")
    with pytest.raises(SystemExit, match="nothing.pt"):
        main(["eval", "--checkpoint", str(bogus)])
    with pytest.raises(SystemExit, match="unknown config field"):
        main(["train", "--profile", "smoke", "--out", str(tmp_path / "r"), "--set", "model.x=1"])
