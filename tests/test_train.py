"""fit(): a smoke run learns, a killed run resumes to the same weights, DDP runs on 2 CPU
processes, and bad input fails before anything is written."""

import io
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from vscr_core.config import profile
from vscr_core.data import load_uav_veid
from vscr_core.train import CHECKPOINT_NAME, fit, load_checkpoint, load_trained_model


@pytest.fixture
def smoke_cfg(smoke_synth):
    return profile("smoke", **{"data.root": str(smoke_synth)})


def _cli_train(cfg_overrides: dict, out, prefix=()):
    sets = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in cfg_overrides.items()]
    cmd = [*prefix, "-m", "vscr_core.cli", "train", "--profile", "smoke", "--out", str(out),
           "--quiet", "--set", *sets]
    return cmd


def test_smoke_run_lowers_its_loss_and_leaves_a_usable_checkpoint(smoke_cfg, tmp_path, capfd):
    result = fit(smoke_cfg, tmp_path, progress=False)
    printed = capfd.readouterr()
    assert "epoch" not in printed.out + printed.err  # progress=False is silent in every epoch
    history = result.history
    assert len(history) == smoke_cfg.train.epochs
    assert history[-1]["loss_total"] < history[0]["loss_total"]
    assert history[-1]["loss_triplet"] < history[0]["loss_triplet"]
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert len(log) == 1 + smoke_cfg.train.epochs and log[0].startswith("epoch,lr,loss_id")
    model = load_trained_model(result.checkpoint)
    with torch.no_grad():
        feats = model(torch.randn(3, 3, *smoke_cfg.data.image_size))
    assert feats.shape == (3, 512) and torch.isfinite(feats).all()


def test_resume_after_a_kill_matches_an_uninterrupted_run(smoke_cfg, smoke_synth, tmp_path):
    overrides = {"data.root": str(smoke_synth), "train.epochs": 3}
    cfg = smoke_cfg.override(**{"train.epochs": 3})
    reference = fit(cfg, tmp_path / "whole", progress=False)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *_cli_train(overrides, killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = killed / CHECKPOINT_NAME
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert ckpt.exists(), stderr.decode()[-3000:]
    interrupted_at = load_checkpoint(ckpt)["epoch"]  # the last complete checkpoint is usable
    assert interrupted_at < 3, "the run finished before it could be killed"

    resumed = fit(cfg, killed, progress=False)
    assert len(resumed.history) == 3
    ref_state, got_state = reference.model.state_dict(), resumed.model.state_dict()
    for key in ref_state:
        assert torch.equal(ref_state[key], got_state[key]), key


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(smoke_synth, tmp_path):
    out = tmp_path / "ddp"
    cmd = _cli_train({"data.root": str(smoke_synth), "train.epochs": 2}, out,
                     prefix=(sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(out / CHECKPOINT_NAME)
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# --- bad input: refused before training starts, naming the field or file -----------------------


def test_more_view_classes_than_the_data_label_is_refused(smoke_cfg, smoke_synth, tmp_path):
    ds = load_uav_veid(smoke_synth, split="val")
    ds.num_views = 2
    with pytest.raises(ValueError, match="model.num_views: 4 view classes"):
        fit(smoke_cfg, tmp_path / "out", dataset=ds, progress=False)
    assert not (tmp_path / "out").exists()


def test_adversary_without_view_labels_is_refused(smoke_cfg, smoke_synth, tmp_path):
    ds = load_uav_veid(smoke_synth, split="val")
    ds.num_views = 0
    with pytest.raises(ValueError, match="model.view_adversary"):
        fit(smoke_cfg, tmp_path / "out", dataset=ds, progress=False)


def test_a_batch_larger_than_the_data_is_refused(smoke_cfg, tmp_path):
    with pytest.raises(ValueError, match="train.ids_per_batch: P = 5000"):
        fit(smoke_cfg.override(**{"train.ids_per_batch": 5000}), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, match", [
    (b"not a checkpoint at all", "corrupt or not a torch file"),
    ("foreign", "is not a vscr checkpoint"),
])
def test_corrupt_or_foreign_checkpoints_are_refused_and_kept(smoke_cfg, tmp_path, content, match):
    ckpt = tmp_path / CHECKPOINT_NAME
    if content == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, ckpt)
    else:
        ckpt.write_bytes(content)
    before = ckpt.read_bytes()
    with pytest.raises(ValueError, match=match) as err:
        fit(smoke_cfg, tmp_path, progress=False)
    assert str(ckpt) in str(err.value)
    assert ckpt.read_bytes() == before


def test_a_checkpoint_of_another_config_is_refused(smoke_cfg, tmp_path):
    fit(smoke_cfg.override(**{"train.epochs": 1}), tmp_path, progress=False)
    with pytest.raises(ValueError, match="belongs to a different config"):
        fit(smoke_cfg.override(**{"train.epochs": 1, "train.seed": 7}), tmp_path, progress=False)


def test_a_finished_record_without_its_checkpoint_is_retrained_and_kept(smoke_cfg, tmp_path,
                                                                        capsys):
    cfg = smoke_cfg.override(**{"train.epochs": 2})
    first = fit(cfg, tmp_path, progress=False)
    log = tmp_path / "log.csv"
    record = log.read_bytes()
    (tmp_path / CHECKPOINT_NAME).unlink()  # a clone: git keeps the record, not the weights
    again = fit(cfg, tmp_path, progress=False)
    assert log.read_bytes() == record and len(again.history) == 2
    assert "retrained for its weights, its log.csv record kept" in capsys.readouterr().out
    for key, value in first.model.state_dict().items():  # same machine: the same weights
        assert torch.equal(value, again.model.state_dict()[key]), key

    # a log of a run still training is no record: a restart from scratch rewrites it
    log.write_text("\n".join(record.decode().splitlines()[:2]) + "\n")
    (tmp_path / CHECKPOINT_NAME).unlink()
    fit(cfg, tmp_path, progress=False)
    rewritten, recorded = pd.read_csv(log), pd.read_csv(io.BytesIO(record))
    assert len(rewritten) == 2  # both epochs again, the same losses; only the speed differs
    assert rewritten.drop(columns="images_per_s").equals(recorded.drop(columns="images_per_s"))
