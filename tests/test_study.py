"""The converged study's machinery: paired initialisation across variants, per-branch and
per-epoch logs, divergence records, refusal of runs from other training code, and the
convergence and lambda_3 rules."""

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from vscr_core import experiments
from vscr_core.config import continued, lr_milestones, profile, profile_settings
from vscr_core.experiments import RUNS_DIR, run_dir
from vscr_core.model import VSCRNet
from vscr_core.paper import study
from vscr_core.paper.variants import scheduled_variant, variant_config
from vscr_core.runtime import describe_hardware
from vscr_core.train import (
    CHECKPOINT_NAME,
    DIVERGED_NAME,
    TRAINING_SEMANTICS,
    TrainingDiverged,
    fit,
    load_checkpoint,
    save_checkpoint,
    training_samples,
)


@pytest.fixture
def smoke_cfg(smoke_synth):
    return profile("smoke", **{"data.root": str(smoke_synth), "train.epochs": 2})


def _init(base, name, seed=0):
    cfg = variant_config(base, name, seed)
    torch.manual_seed(cfg.train.seed)  # what fit() does before building the model
    return VSCRNet.from_config(cfg.model, 20).state_dict()


def _same(a, b, prefix):
    keys = [k for k in a if k.startswith(prefix)]
    assert keys, prefix
    return all(torch.equal(a[k], b[k]) for k in keys)


def test_one_seed_gives_every_variant_the_same_start_in_the_parts_they_share():
    base = profile("smoke")
    baseline, adv = _init(base, "baseline"), _init(base, "view_adversary")
    ms, vscr = _init(base, "multi_scale"), _init(base, "vscr")
    for other in (adv, ms, vscr):
        assert _same(baseline, other, "trunk.") and _same(baseline, other, "heads.0.")
        assert _same(baseline, other, "branches.0.")
    assert _same(ms, vscr, "heads.1.") and _same(ms, vscr, "heads.2.")
    assert _same(adv, vscr, "view_discriminator.")
    # and a different seed is a different start
    assert not _same(baseline, _init(base, "baseline", seed=1), "heads.0.")


def test_variants_without_mscl_ignore_its_settings():
    base = profile("smoke").override(**{"train.mscl_reduction": "sum", "train.mscl_weight": 0.1})
    plain = profile("smoke")
    assert variant_config(base, "baseline").digest() == variant_config(plain, "baseline").digest()
    assert variant_config(base, "t2_d").digest() == variant_config(plain, "t2_d").digest()
    assert variant_config(base, "vscr").digest() != variant_config(plain, "vscr").digest()


def test_log_has_each_branchs_id_loss_and_a_validation_rank1_per_epoch(smoke_cfg, tmp_path):
    cfg = variant_config(smoke_cfg.override(**{"train.val_split": "val"}), "multi_scale")
    fit(cfg, tmp_path, progress=False)
    log = pd.read_csv(tmp_path / "log.csv")
    assert len(log) == 2
    for b in range(3):
        assert (log[f"loss_id_b{b}"] > 0).all()
    summed = log[["loss_id_b0", "loss_id_b1", "loss_id_b2"]].sum(axis=1)
    assert (summed - log["loss_id"]).abs().max() < 1e-4
    assert log["val_rank1"].between(0, 100).all()
    assert (log["hardware"] == describe_hardware(torch.device("cpu"))).all()


def test_the_summary_names_each_machine_a_run_trained_on_in_order():
    old = pd.DataFrame({"epoch": [1, 2]})  # a log from before train.fit recorded the hardware
    assert study.trained_on(old) == "not recorded"
    resumed = pd.DataFrame({"hardware": [None, "AMD EPYC (avx512_bf16)", "AMD EPYC (avx512_bf16)",
                                         "Intel Xeon (avx512_bf16 amx_bf16)"]})
    assert study.trained_on(resumed) == \
        "not recorded + AMD EPYC (avx512_bf16) + Intel Xeon (avx512_bf16 amx_bf16)"


def test_a_diverging_run_stops_records_why_and_is_not_retrained(smoke_cfg, tmp_path):
    cfg = smoke_cfg.override(**{"train.lr": 1e30})  # the first SGD step sends the loss to inf
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        fit(cfg, tmp_path, progress=False)
    record = json.loads((tmp_path / DIVERGED_NAME).read_text())
    assert record["epoch"] == 1
    with pytest.raises(TrainingDiverged, match="diverged before"):
        fit(cfg, tmp_path, progress=False)
    assert study.run_or_divergence(cfg, {"split": "val"}, runs_dir=tmp_path / "runs",
                                   progress=False) is None


def test_a_checkpoint_from_other_training_semantics_is_refused(smoke_cfg, tmp_path):
    fit(smoke_cfg.override(**{"train.epochs": 1}), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    state["training_semantics"] = TRAINING_SEMANTICS - 1
    save_checkpoint(tmp_path / CHECKPOINT_NAME, state)
    with pytest.raises(ValueError, match="training semantics"):
        fit(smoke_cfg.override(**{"train.epochs": 1}), tmp_path, progress=False)


def test_run_folders_carry_the_training_semantics(smoke_cfg):
    assert run_dir(smoke_cfg).name.endswith(f"-t{TRAINING_SEMANTICS}")


def _fake_log(cfg, runs_dir, id_b0, id_b1, val):
    out = run_dir(cfg, runs_dir)
    out.mkdir(parents=True)
    epochs = len(val)
    pd.DataFrame({"epoch": range(1, epochs + 1), "loss_id_b0": id_b0, "loss_id_b1": id_b1,
                  "val_rank1": val, "images_per_s": 50.0}).to_csv(out / "log.csv", index=False)


def test_train_seconds_counts_each_epochs_images_at_its_logged_speed(smoke_synth):
    cfg = variant_config(profile("smoke", **{"data.root": str(smoke_synth)}), "baseline", 0)
    ds = study.load_data(cfg)
    secs = study.train_seconds(cfg, ds, pd.DataFrame({"images_per_s": [10.0, 20.0]}))
    per_epoch = secs / (1 / 10 + 1 / 20)  # images in one epoch
    t, samples = cfg.train, training_samples(cfg, ds)
    batch, ids = t.ids_per_batch * t.images_per_id, len({s.pid for s in samples})
    # every image once, each identity padded to a multiple of K, at most P - 1 chunks left over
    assert per_epoch == pytest.approx(round(per_epoch / batch) * batch)
    assert len(samples) - (t.ids_per_batch - 1) * t.images_per_id <= per_epoch
    assert per_epoch <= len(samples) + ids * (t.images_per_id - 1)


def test_convergence_needs_every_branch_low_and_a_plateau(smoke_synth, tmp_path):
    base = profile("smoke", **{"data.root": str(smoke_synth), "train.epochs": 10})
    cfg = variant_config(base, "t2_e", 0)
    num_ids = study.load_data(cfg).num_train_pids
    bound = study.ID_LOSS_FRACTION * math.log(num_ids)
    flat = [10, 20, 30, 40, 50, 55, 58, 60, 60.5, 60.8]  # +0.8 over the last 2 epochs
    _fake_log(cfg, tmp_path, [bound - 0.1] * 10, [bound - 0.2] * 10, flat)
    row = study.convergence(cfg, tmp_path)
    assert row["converged"] and row["val_rank1_gain_last_fifth"] == pytest.approx(0.8)
    assert row["id_loss_bound"] == pytest.approx(bound, abs=1e-3)

    side_high = variant_config(base, "t2_e", 1)
    _fake_log(side_high, tmp_path, [bound - 0.1] * 10, [bound + 0.1] * 10, flat)
    assert not study.convergence(side_high, tmp_path)["converged"]

    rising = variant_config(base, "t2_e", 2)
    _fake_log(rising, tmp_path, [1.0] * 10, [1.0] * 10, flat[:8] + [62, 63])
    assert not study.convergence(rising, tmp_path)["converged"]


def test_mscl_choice_takes_the_best_run_that_did_not_diverge():
    sweep = pd.DataFrame({"mscl_reduction": ["sum", "sum", "mean"], "mscl_weight": [1, 0.1, 1],
                          "diverged": [True, False, False], "val_rank1": [float("nan"), 50, 48]})
    assert study.mscl_choice(sweep) == ("sum", 0.1)
    unfinished = sweep.assign(val_rank1=[float("nan"), 50, float("nan")])
    assert study.mscl_choice(unfinished) is None


def test_the_cpu_profile_uses_the_mscl_form_its_committed_sweep_chose():
    from vscr_core.config import profile
    from vscr_core.paper.results import read_table

    sweep, meta = read_table("mscl_sweep")
    assert len(sweep) == len(study.MSCL_SWEEP) and meta["profile"] == "cpu"
    t = profile("cpu").train
    assert study.mscl_choice(sweep) == (t.mscl_reduction, t.mscl_weight)


def test_learning_curves_draw_every_seed_of_every_variant(tmp_path):
    log = pd.DataFrame({"epoch": [1, 2, 3], "loss_id_b0": [5.0, 4.0, 3.0],
                        "loss_id_b1": [5.1, 4.2, 3.1], "val_rank1": [10.0, 20.0, 25.0]})
    logs = {(v, s): log + s for v in ("baseline", "vscr") for s in (0, 1)}
    path = study.plot_learning_curves(logs, tmp_path / "curves.png", "t", num_ids=219)
    assert path.stat().st_size > 10_000


def test_plateau_gain_reads_the_fitted_line_not_two_noisy_points():
    # 32 epochs: the last fifth is 6 epochs, read from epoch 26 on (7 evaluations)
    flat_noisy = [50.0] * 25 + [60.0, 59.0, 60.0, 59.5, 60.0, 59.0, 61.2]
    assert flat_noisy[-1] - flat_noisy[-7] > study.PLATEAU_POINTS  # the endpoints alone: +1.2
    assert study.plateau_gain(flat_noisy, 32) < study.PLATEAU_POINTS
    rising = [50.0] * 25 + [60.0 + 0.5 * i for i in range(7)]
    assert study.plateau_gain(rising, 32) == pytest.approx(3.0)


def test_study_runs_keep_their_folders_when_fields_are_added():
    """Fields added to the config at their defaults leave the digest alone: the committed sweep
    runs are still found (no silent retrain)."""
    runs = RUNS_DIR
    for cfg in study.sweep_configs(profile("cpu")):
        assert (runs / run_dir(cfg).name / "config.json").is_file(), run_dir(cfg).name


def test_the_queue_trains_the_seeds_the_notebooks_read():
    settings = profile_settings("cpu")
    queued = list(study.queue(settings))
    seeds = {what: {c.train.seed for w, c, _ in queued if w == what} for what, _, _ in queued}
    assert seeds["table 4"] == seeds["table 3"] == set(settings.seeds)
    assert seeds["table 2"] == set(settings.seeds[:settings.table2_seeds]) == {0, 1}
    assert [c.train.seed for w, c, _ in study.queue(settings, seeds=[3]) if w == "table 2"]


@pytest.mark.parametrize("diverged, measured", [(set(), [0, 1]), ({("vscr", 1)}, [0])])
def test_fig8_is_measured_once_a_seeds_baseline_and_vscr_have_finished(monkeypatch, diverged,
                                                                        measured):
    """Each seed's distractor curves are measured by the study while its checkpoints are at hand;
    a seed whose VSCR diverged has no curve to measure."""
    trained, fig8 = [], []

    def fake_run(cfg, protocol):
        trained.append(cfg.name)
        key = (cfg.name.split("-")[1], cfg.train.seed)
        return None if key in diverged else {"rank1": 0.5}

    monkeypatch.setattr(study, "run_or_divergence", fake_run)
    monkeypatch.setattr(study, "fig8_curves", lambda profile_name, seed: fig8.append(seed))
    monkeypatch.setattr(study, "write_tables", lambda *args, **kwargs: None)
    monkeypatch.setattr(study, "warn_unextended", lambda settings, num_ids: None)
    monkeypatch.setattr(study, "load_data", lambda cfg: SimpleNamespace(num_train_pids=219))
    study.main(["--profile", "cpu", "--seeds", "0", "1", "--only", "table 4"])
    assert len(trained) == 2 * len(study.TABLE4)
    assert fig8 == measured


def test_a_continued_config_keeps_the_schedule_it_continues():
    cfg = profile("cpu")
    longer = continued(cfg, 6)
    t = longer.train
    assert (t.epochs, t.lr_steps, t.grl_ramp_epochs) == (38, (20, 25), 32)
    assert continued(longer, 2).train.grl_ramp_epochs == 32  # the ramp of the first schedule
    scaled = profile("smoke").override(**{"train.epochs": 8, "train.lr_steps": None})
    assert continued(scaled, 2).train.lr_steps == lr_milestones(scaled.train)  # not rescaled
    with pytest.raises(ValueError, match="extra_epochs"):
        continued(cfg, 0)


def test_an_extended_seed_trains_every_variant_a_fifth_longer_per_extension():
    settings = profile_settings("cpu")
    assert settings.extensions == {0: 2, 2: 2}
    epochs = {(w, c.train.seed, c.name): c.train.epochs for w, c, _ in study.queue(settings)}
    for seed in settings.seeds:
        assert {e for (w, s, _), e in epochs.items() if w != "mscl sweep" and s == seed} \
            == {32 + 6 * settings.extensions.get(seed, 0)}, seed
    # the runs of the other seeds keep their committed folders
    for seed in sorted(set(settings.seeds) - set(settings.extensions)):
        cfg = scheduled_variant(settings, "baseline", seed)
        assert (run_dir(cfg) / "log.csv").is_file(), run_dir(cfg).name
    # a second extension continues the first: its config is the first's `continued`
    once = scheduled_variant(replace(settings, extensions={0: 1}), "vscr", 0)
    assert continued(once, 6).digest() == scheduled_variant(settings, "vscr", 0).digest()


def test_a_continued_run_starts_from_the_shorter_run_and_ends_as_if_trained_in_one_go(
        smoke_cfg, tmp_path):
    """The view adversary's reversal ramp and the lr drops depend on the schedule: a continued
    run keeps them where the shorter run had them, so continuing it is the same as training the
    longer config from scratch."""
    short = variant_config(smoke_cfg.override(**{"train.lr_steps": (1,)}), "vscr", 0)
    longer = continued(short, 1)
    experiments.trained_model(short, tmp_path / "a", progress=False)
    assert experiments.shorter_run(longer, tmp_path / "a") == run_dir(short, tmp_path / "a")
    assert experiments.shorter_run(longer, tmp_path / "b") is None
    assert experiments.shorter_run(short, tmp_path / "a") is None  # not a longer run's
    resumed = experiments.trained_model(longer, tmp_path / "a", progress=False)
    assert load_checkpoint(run_dir(longer, tmp_path / "a") / CHECKPOINT_NAME)["epoch"] == 3
    log = pd.read_csv(run_dir(longer, tmp_path / "a") / "log.csv")
    assert list(log["epoch"]) == [1, 2, 3]
    scratch = experiments.trained_model(longer, tmp_path / "b", progress=False)
    a, b = resumed.state_dict(), scratch.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the shorter run is left as it was
    assert load_checkpoint(run_dir(short, tmp_path / "a") / CHECKPOINT_NAME)["epoch"] == 2


def test_the_extension_rule_names_the_seeds_with_a_run_that_failed_at_the_schedule(
        smoke_synth, tmp_path):
    base = profile("smoke", **{"data.root": str(smoke_synth), "train.epochs": 10})
    settings = replace(profile_settings("smoke"), config=base, seeds=(0, 1, 2))
    num_ids = 100
    low = [1.0] * 10
    flat = [10, 20, 30, 40, 50, 55, 58, 60, 60.5, 60.8]
    _fake_log(variant_config(base, "baseline", 0), tmp_path, low, low, flat)
    _fake_log(variant_config(base, "vscr", 1), tmp_path, low, low, flat[:8] + [62, 63])
    training = variant_config(base, "multi_scale", 2)
    _fake_log(training, tmp_path, low[:6], low[:6], flat[:6])
    vscr_1 = run_dir(variant_config(base, "vscr", 1), tmp_path).name
    assert study.extension_rounds(settings, num_ids, tmp_path) == {1: [[vscr_1]]}
    # an extended seed is still named (the record of why it was extended)
    extended = replace(settings, extensions={1: 1})
    assert study.extension_rounds(extended, num_ids, tmp_path) == {1: [[vscr_1]]}
    # at the extended length only the runs of that seed count: seed 0's converged at 10
    # epochs, so its 12-epoch run failing is no round of the rule
    once = replace(settings, extensions={0: 1, 1: 1})
    rising = flat[:10] + [63, 65]
    _fake_log(scheduled_variant(once, "vscr", 1), tmp_path, low + low[:2], low + low[:2],
              rising)
    _fake_log(scheduled_variant(once, "baseline", 0), tmp_path, low + low[:2], low + low[:2],
              rising)
    twice = [[vscr_1], [run_dir(scheduled_variant(once, "vscr", 1), tmp_path).name]]
    assert study.extension_rounds(settings, num_ids, tmp_path) == {1: twice}
    # the rule stops at MAX_EXTENSIONS: a failure at the last length is reported, not extended
    assert study.MAX_EXTENSIONS == 2
    last = replace(settings, extensions={1: 2})
    _fake_log(scheduled_variant(last, "vscr", 1), tmp_path, low + low[:4], low + low[:4],
              rising + [67, 69])
    assert study.extension_rounds(settings, num_ids, tmp_path) == {1: twice}


def test_the_cpu_profile_extends_exactly_the_seeds_its_committed_runs_call_for():
    from vscr_core.paper.results import read_table

    settings = profile_settings("cpu")
    num_ids = int(read_table("training_summary")[0]["num_train_ids"].iloc[0])
    rounds = study.extension_rounds(settings, num_ids)
    assert {seed: len(r) for seed, r in rounds.items()} == settings.extensions
