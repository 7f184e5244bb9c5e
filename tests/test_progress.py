"""The study's progress report: each queued run's state, the hours left at the logged speed, and
Table 4's paired differences over the seeds finished so far."""

import json
import math
from dataclasses import replace

import pandas as pd
import pytest
from scipy import stats

from vscr_core.config import continued, profile, profile_settings
from vscr_core.experiments import run_dir
from vscr_core.paper import claims, comparison, distractors, progress, study
from vscr_core.paper.variants import variant_config
from vscr_core.train import CHECKPOINT_NAME

EPOCHS = 5


@pytest.fixture
def settings(smoke_synth):
    cfg = profile("smoke", **{"data.root": str(smoke_synth), "train.epochs": EPOCHS})
    return replace(profile_settings("smoke"), config=cfg, seeds=(0, 1))


def _fake_run(cfg, runs_dir, epochs, images_per_s, rank1=None):
    """A run folder whose log reached `epochs` at `images_per_s`, and test metrics when given."""
    out = run_dir(cfg, runs_dir)
    out.mkdir(parents=True)
    log = {"epoch": range(1, epochs + 1), "images_per_s": images_per_s, "val_rank1": 50.0}
    log |= {f"loss_id_b{b}": 0.1 for b in range(len(cfg.model.dilations))}
    pd.DataFrame(log).to_csv(out / "log.csv", index=False)
    if rank1 is not None:
        (out / "metrics-test.json").write_text(json.dumps({"rank1": rank1 / 100, "mAP": 0.5}))


def test_progress_reads_each_runs_state_and_prices_what_is_left(settings, tmp_path):
    base = settings.config
    ranks = {("baseline", 0): 40.0, ("view_adversary", 0): 41.0, ("multi_scale", 0): 43.0,
             ("vscr", 0): 44.0, ("baseline", 1): 42.0, ("vscr", 1): 45.512345}
    for (name, seed), rank1 in ranks.items():
        speed = 25.0 if name in ("multi_scale", "vscr") else 50.0  # 3 branches: half the speed
        if (name, seed) == ("baseline", 1):
            speed = [50.0, 50.0, 5.0, 50.0, 50.0]  # one epoch slowed by other work
        _fake_run(variant_config(base, name, seed), tmp_path, EPOCHS, speed, rank1)
    _fake_run(variant_config(base, "view_adversary", 1), tmp_path, 2, 50.0)  # still training

    full = progress.progress_table(settings, runs_dir=tmp_path)
    assert set(full["what"]) == {"mscl sweep", "table 4", "table 3", "table 2"}
    assert full["run"].is_unique  # the pilot, Table 4's baseline of seed 0, is listed once
    table = full[full["what"] != "mscl sweep"].set_index(["variant", "seed"])
    assert table.loc[("baseline", 0), "what"] == "table 4"
    assert table.loc[("vscr", 1), "state"] == progress.FINISHED
    assert table.loc[("vscr", 1), "rank1"] == pytest.approx(45.512345, abs=1e-6)  # unrounded
    assert table.loc[("vscr", 1), "converged"]
    assert table.loc[("view_adversary", 1), ["state", "epochs_done"]].tolist() == [
        progress.TRAINING, 2]
    assert table.loc[("multi_scale", 1), "state"] == progress.QUEUED

    images = study.epoch_images(base, study.load_data(base))
    hours = table["hours_left"]
    # seconds per image: 1/50 with one branch, 1/25 with three, the line between them for two
    assert hours[("view_adversary", 1)] == pytest.approx(3 * images / 50 / 3600)
    assert hours[("multi_scale", 1)] == pytest.approx(EPOCHS * images / 25 / 3600)
    assert hours[("t2_e", 0)] == pytest.approx(EPOCHS * images * 0.03 / 3600)
    assert hours[("vscr", 1)] == 0
    slowed = table.loc[("baseline", 1)]
    assert slowed["hours_spent"] == pytest.approx((4 / 50 + 1 / 5) * images / 3600)
    assert slowed["hours_at_median_speed"] == pytest.approx(EPOCHS * images / 50 / 3600)
    # a finished run at a constant speed: as ran and at its median speed agree
    assert table.loc[("vscr", 1), "hours_at_median_speed"] == pytest.approx(
        table.loc[("vscr", 1), "hours_spent"]) == pytest.approx(EPOCHS * images / 25 / 3600)

    so_far = progress.tables_so_far(table.reset_index()).set_index("claim")
    d = pd.Series([44.0 - 40.0, 45.512345 - 42.0])  # VSCR - baseline, paired by seed
    half = stats.t.ppf(0.975, 1) * d.std(ddof=1) / math.sqrt(2)
    row = so_far.loc["VSCR beats the baseline"]
    assert row["n_seeds"] == 2 and row["measured"] == pytest.approx(d.mean(), abs=0.005)
    assert [row["ci_low"], row["ci_high"]] == pytest.approx([d.mean() - half, d.mean() + half],
                                                            abs=0.01)
    assert row["verdict"] == claims.verdict(row["ci_low"], row["ci_high"])
    one = so_far.loc["the view adversary beats the baseline"]  # seed 1's adversary unfinished
    assert one["n_seeds"] == 1 and math.isnan(one["ci_low"]) and one["verdict"] == "inconclusive"

    # Fig. 8: rank-1 with no distractors and with all of them, from the curves the study kept
    ds = comparison.uav_test_split(base, settings.fig8_distractors)
    counts = distractors.distractor_counts(len(ds.distractors))
    ends = {("baseline", 0): (40.0, 30.0), ("vscr", 0): (44.0, 38.0),
            ("baseline", 1): (42.0, 30.0), ("vscr", 1): (45.0, 35.0)}
    for (name, seed), (first, last) in ends.items():
        curve = {str(c): {"rank1": (first + (last - first) * c / counts[-1]) / 100}
                 for c in counts}
        path = comparison.kept_result_path(variant_config(base, name, seed),
                                           distractors.distractor_curve_name(ds, counts), tmp_path)
        path.write_text(json.dumps(curve))
    both = progress.claims_so_far(settings, table.reset_index(), runs_dir=tmp_path)
    assert both["claim"].iloc[:-1].tolist() == so_far.index.tolist()
    fig8 = both.iloc[-1]
    assert fig8["source"] == "Fig. 8" and fig8["n_seeds"] == 2
    assert fig8["differences"] == pytest.approx([4.0, 2.0])  # -6 - (-10), -10 - (-12)
    half = stats.t.ppf(0.975, 1) * pd.Series([4.0, 2.0]).std(ddof=1) / math.sqrt(2)
    assert [fig8["ci_low"], fig8["ci_high"]] == pytest.approx([3 - half, 3 + half], abs=0.01)
    assert pd.isna(fig8["reported"])

    png = progress.plot_claims_so_far(both, tmp_path / "so_far.png")
    assert png.stat().st_size > 10_000

    text = progress.readme_section(full, both, settings)
    assert "6 of " in text and "training (2/5 epochs)" in text
    assert "none (under two seeds)" in text and "| Fig. 8 | 2 | 3.0 |" in text
    assert "extension" not in text
    ended = full.assign(state=progress.FINISHED, hours_left=0.0)
    assert "Every run of the study has finished." in progress.readme_section(ended, both, settings)
    assert "Every run" not in text and "Still to run" in text

    unconverged = {1: [["smoke-baseline-s1-x"]]}
    pending = progress.readme_section(full, both, settings, unconverged)
    assert f"failed at the scheduled {EPOCHS} epochs for `smoke-baseline-s1-x`" in pending
    assert f"still to be extended to {EPOCHS + 1} epochs" in pending
    extended = replace(settings, extensions={1: 1})
    done = progress.readme_section(full, both, extended, unconverged)
    assert f"every run of the seed trains {EPOCHS + 1} epochs" in done
    assert "reported as not converged" not in done
    # a second extension: both rounds' failures are named, and the seed trains two fifths more
    twice = progress.readme_section(full, both, replace(settings, extensions={1: 2}),
                                    {1: [["smoke-baseline-s1-x"], ["smoke-vscr-s1-y"]]})
    assert f"at {EPOCHS + 1} epochs for `smoke-vscr-s1-y`" in twice
    assert f"every run of the seed trains {EPOCHS + 2} epochs" in twice
    vscr_failed = full.assign(converged=(full["variant"] != "vscr") | (full["seed"] != 1))
    again = progress.readme_section(vscr_failed, both, extended, unconverged)
    assert f"At {EPOCHS + 1} epochs the rule failed for vscr, reported as" in again
    assert "Secondary reading" not in again

    # the secondary reading: without seed 1's VSCR, its claims keep only seed 0's pair
    without = table.drop(index=("vscr", 1)).reset_index()
    converged_only = progress.claims_so_far(settings, without, runs_dir=tmp_path).set_index(
        "claim")
    vscr = converged_only.loc["VSCR beats the baseline"]
    assert vscr["n_seeds"] == 1 and vscr["measured"] == pytest.approx(4.0)
    assert converged_only.iloc[-1]["differences"] == pytest.approx([4.0])  # Fig. 8, seed 0
    kept = converged_only.loc["the view adversary beats the baseline"]
    assert kept["n_seeds"] == 1 and kept["measured"] == pytest.approx(1.0)  # as before
    secondary = progress.readme_section(vscr_failed, both, extended, unconverged,
                                        converged_only.reset_index())
    assert "Secondary reading" in secondary and secondary.count("| VSCR beats the baseline |") == 2


def _row(table, what, variant, seed):
    (index,) = table.index[(table["what"] == what) & (table["variant"] == variant)
                           & (table["seed"] == seed)]
    return table.loc[index]


def test_a_queued_run_that_continues_a_shorter_one_is_priced_for_its_extra_epochs(settings,
                                                                                 tmp_path):
    base = settings.config
    for name in ("baseline", "vscr"):
        _fake_run(variant_config(base, name, 0), tmp_path, EPOCHS, 25.0, 40.0)
    shorter = variant_config(base, "vscr", 1)
    _fake_run(shorter, tmp_path, EPOCHS, 25.0)
    (run_dir(shorter, tmp_path) / "config.json").write_text(json.dumps(shorter.to_dict()))
    (run_dir(shorter, tmp_path) / CHECKPOINT_NAME).touch()
    extended = replace(settings, extensions={1: 1})  # a fifth of 5 epochs: one more
    table = progress.progress_table(extended, runs_dir=tmp_path)
    row = _row(table, "table 4", "vscr", 1)
    images = study.epoch_images(base, study.load_data(base))
    assert row["state"] == progress.QUEUED and row["epochs"] == EPOCHS + 1
    assert row["hours_left"] == pytest.approx(images / 25 / 3600)
    # without the shorter run's checkpoint it would train from scratch
    (run_dir(shorter, tmp_path) / CHECKPOINT_NAME).unlink()
    table = progress.progress_table(extended, runs_dir=tmp_path)
    row = _row(table, "table 4", "vscr", 1)
    assert row["hours_left"] == pytest.approx((EPOCHS + 1) * images / 25 / 3600)


def test_the_speed_model_is_none_before_any_run_finishes():
    assert progress.speed_model([]) is None


def test_the_speed_model_reads_the_runs_of_this_hardware_when_there_are_any(settings):
    cfg = settings.config
    slow = pd.DataFrame({"images_per_s": [10.0, 10.0], "hardware": "AMD EPYC (avx512_bf16)"})
    fast = pd.DataFrame({"images_per_s": [40.0, 40.0], "hardware": "Xeon (amx_bf16)"})
    unrecorded = pd.DataFrame({"images_per_s": [20.0, 20.0]})
    runs = [(cfg, slow), (cfg, fast), (cfg, unrecorded)]
    assert progress.speed_model(runs, "Xeon (amx_bf16)")(1) == pytest.approx(1 / 40)
    # none ran here: every finished run counts
    assert progress.speed_model(runs, "another CPU")(1) == pytest.approx((1 / 10 + 1 / 40 + 1 / 20)
                                                                        / 3)


def test_the_study_cost_counts_every_record_and_each_epoch_once(settings, tmp_path):
    base = variant_config(settings.config, "baseline", 0)
    longer = continued(base, 2)  # its log repeats the 5 epochs of `base`, then adds 2
    other = variant_config(settings.config, "vscr", 0)
    for cfg, speeds in ((base, [50.0] * 5), (longer, [50.0] * 5 + [25.0] * 2),
                        (other, [10.0] * 5)):
        _fake_run(cfg, tmp_path, cfg.train.epochs, speeds)
        (run_dir(cfg, tmp_path) / "config.json").write_text(json.dumps(cfg.to_dict()))
    ds = study.load_data(settings.config)
    images = study.epoch_images(base, ds)
    as_ran = images * (5 / 50 + 2 / 25) + study.epoch_images(other, ds) * 5 / 10
    # `longer`'s median speed is 50 img/s: its two slow epochs count at that speed
    at_median = images * 7 / 50 + study.epoch_images(other, ds) * 5 / 10
    hours = progress.recorded_hours(settings, tmp_path)
    assert hours.as_ran == pytest.approx(as_ran / 3600)
    assert hours.at_median_speed == pytest.approx(at_median / 3600)


def test_only_finished_runs_can_fail_the_convergence_rule():
    table = pd.DataFrame({
        "state": [progress.FINISHED, progress.FINISHED, progress.TRAINING, progress.QUEUED],
        "converged": [True, False, False, None]})
    assert progress.failed_rule(table).tolist() == [False, True, False, False]


def test_tables_2_and_3_join_the_claims_so_far_once_a_seed_pairs(settings, tmp_path):
    ranks = {("baseline", 0): 40.0, ("baseline", 1): 42.0, ("view_adversary", 0): 43.0,
             ("multi_scale", 0): 45.0, ("view3", 0): 41.0, ("view3", 1): 44.0,
             ("t2_h", 0): 45.5}
    for (name, seed), rank1 in ranks.items():
        _fake_run(variant_config(settings.config, name, seed), tmp_path, EPOCHS, 50.0, rank1)
    table = progress.progress_table(settings, runs_dir=tmp_path)
    so_far = progress.tables_so_far(table)
    # Table 4's claims first; a claim with no seed where both runs finished is left out
    assert so_far["source"].tolist() == ["Table 4 (b) vs (a)", "Table 4 (c) vs (a)", "Table 3",
                                         "Table 3", "Table 2 (h) vs (g)"]
    view3 = so_far.set_index("claim").loc["a 3-view adversary beats the baseline"]
    assert view3["n_seeds"] == 2 and view3["differences"] == pytest.approx([1.0, 2.0])
    assert view3["reported"] == pytest.approx(85.71 - 83.52)
    fourth = so_far.set_index("claim").loc["a fourth branch adds little"]
    assert fourth["margin"] == claims.EQUIVALENCE_MARGIN and fourth["n_seeds"] == 1
    assert fourth["reported"] == pytest.approx(91.33 - 91.32)  # Table 2's numbers, not Table 4's
    assert pd.isna(so_far.set_index("claim").loc["the view adversary beats the baseline",
                                                  "margin"])
    text = progress.readme_section(table, so_far, settings, all_hours=progress.Hours(3.0, 2.0))
    assert "each epoch once: 2.0 h at each record's median speed, 3.0 h as ran." in text
    assert "| test mAP (%) | hours as ran | hours at median speed |" in text
    assert "| a fourth branch adds little | Table 2 (h) vs (g) | 1 | 0.5 | none (under two " \
           "seeds) | ±1 |" in text
    png = progress.plot_claims_so_far(so_far, tmp_path / "so_far.png")
    assert png.stat().st_size > 10_000


def test_the_training_summary_totals_the_same_hours_as_the_progress_table(settings, tmp_path):
    # the README quotes both totals; rounding each run's hours must not drift them apart
    for name, speed in (("baseline", 47.0), ("view_adversary", 53.0), ("vscr", 31.0)):
        for seed in settings.seeds:
            _fake_run(variant_config(settings.config, name, seed), tmp_path, EPOCHS, speed, 45.0)
    finished = progress._finished_study(progress.progress_table(settings, runs_dir=tmp_path))
    summary = study.training_summary(settings, tmp_path)
    assert len(summary) == len(finished) == 6
    for column, total in (("train_hours", "hours_spent"),
                          ("train_hours_at_median_speed", "hours_at_median_speed")):
        assert summary[column].sum() == pytest.approx(finished[total].sum(), abs=1e-3)
