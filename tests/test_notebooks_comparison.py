"""Notebooks 04 (Tables 5-8, Fig. 7) and 05 (Fig. 8) in the smoke profile, read back and checked
against an independent evaluation of the same trained models; and vscr_core.paper.comparison's
chance level against enumeration and simulation, spot checks of its reported numbers
(tests/test_reported.py checks them against the paper's text)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from vscr_core import evaluate, experiments
from vscr_core.paper import comparison as cmp
from vscr_core.paper import distractors, reported, results
from vscr_core.paper import notebook as nbk

# ---------------------------------------------------------------------------------------------
# chance level


def _enumerated(m: int, n: int, ks=(1, 5, 10)) -> dict:
    """CMC@k and AP averaged over every distinct placement of m matches among n items."""
    cmc, ap, count = dict.fromkeys(ks, 0), 0.0, 0
    for pos in itertools.combinations(range(n), m):  # 0-based match positions, sorted
        count += 1
        for k in ks:
            cmc[k] += pos[0] < k
        ap += np.mean([(j + 1) / (p + 1) for j, p in enumerate(pos)])
    return {**{f"rank{k}": cmc[k] / count for k in ks}, "mAP": ap / count}


@pytest.mark.parametrize("m,n", [(1, 1), (1, 6), (2, 5), (3, 8), (6, 6), (2, 13), (4, 11)])
def test_chance_level_equals_enumeration(m, n):
    got, want = evaluate.chance_level([m], [n]), _enumerated(m, n)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k


def test_chance_level_one_match_closed_form_and_averaging():
    g = 2208
    c = evaluate.chance_level([1], [g])
    assert c["rank1"] == pytest.approx(1 / g, rel=1e-12)
    assert c["rank10"] == pytest.approx(10 / g, rel=1e-12)
    assert c["mAP"] == pytest.approx(sum(1 / i for i in range(1, g + 1)) / g, rel=1e-12)
    mixed = evaluate.chance_level([1, 2], [4, 5], ks=(5, 1))
    a, b = _enumerated(1, 4, (1, 5)), _enumerated(2, 5, (1, 5))
    assert list(mixed) == ["rank5", "rank1", "mAP"]
    assert mixed["rank1"] == pytest.approx((a["rank1"] + b["rank1"]) / 2)
    assert mixed["mAP"] == pytest.approx((a["mAP"] + b["mAP"]) / 2)


def test_chance_level_equals_a_simulated_random_ranking():
    """Random features ranked by the project's evaluator, with several matches per query and
    same-camera junk: the measured means agree with the exact chance within sampling error."""
    rng = np.random.default_rng(0)
    g_pids = np.repeat(np.arange(12), 3)  # 12 ids x 3 images = 36 gallery items
    g_cams = np.tile([0, 1, 2], 12)
    q_pids, q_cams = rng.integers(0, 12, 6000), rng.integers(0, 4, 6000)
    q, g = rng.standard_normal((6000, 4)), rng.standard_normal((36, 4))
    r = evaluate.rank_metrics(q.astype(np.float32), g.astype(np.float32), q_pids, g_pids,
                              q_cams, g_cams, junk="same_camera")
    m, n = evaluate.protocol_counts(q_pids, g_pids, q_cams, g_cams, junk="same_camera")
    assert len(m) == r.num_queries == 6000 and set(m) == {2, 3} and set(n) == {35, 36}
    c = evaluate.chance_level(m, n)
    for k in (1, 5, 10):
        p = c[f"rank{k}"]
        assert abs(r.rank(k) - p) < 4 * np.sqrt(p * (1 - p) / 6000), k
    assert abs(r.mAP - c["mAP"]) < 0.015


def test_chance_level_and_counts_reject_bad_input():
    with pytest.raises(ValueError, match="query 1: 3 matches among 2"):
        evaluate.chance_level([1, 3], [4, 2])
    with pytest.raises(ValueError, match="equal-length"):
        evaluate.chance_level([1, 1], [4])
    with pytest.raises(ValueError, match="positive ints, got 0"):
        evaluate.chance_level([1], [4], ks=(0,))
    with pytest.raises(ValueError, match="needs q_camids"):
        evaluate.protocol_counts([1], [1], junk="same_camera")
    with pytest.raises(ValueError, match="'bogus'"):
        evaluate.protocol_counts([1], [1], junk="bogus")
    # a query whose only match is junk is skipped, as the evaluator skips it
    m, n = evaluate.protocol_counts([1, 2], [1, 2, 2], [0, 0], [0, 1, 0], junk="same_camera")
    assert m.tolist() == [1] and n.tolist() == [2]


def test_distractor_counts_and_errors():
    assert distractors.distractor_counts(500) == [0, 100, 200, 300, 400, 500]
    assert distractors.distractor_counts(3) == [0, 1, 2, 3]
    assert distractors.distractor_counts(0) == [0]
    with pytest.raises(ValueError, match="-1"):
        distractors.distractor_counts(-1)
    with pytest.raises(ValueError, match="unknown comparison table 9"):
        cmp.paper_table(9)


# ---------------------------------------------------------------------------------------------
# reported numbers


def test_reported_numbers_spot_checks():
    t5 = {r[0]: r[1:] for r in reported.TABLE5}
    assert t5["VSCR (Ours)"] == (70.59, 88.33, 92.51)
    assert t5["CN-Nets (Yao et al. 2017)"] == (55.91, 76.54, 82.46)
    t6 = {r[0]: r[1:] for r in reported.TABLE6}
    assert t6["VSCR (ours)"] == (94.11, 97.85, 75.53, "ResNet50")
    assert t6["MSVR (Kanac and Zhu 2018)"][1] is None
    t7 = {r[0]: r[1:] for r in reported.TABLE7}
    assert t7["VSCR (ours)"][:3] == (74.58, 87.12, 78.78)
    t8 = {r[0]: r[1:] for r in reported.TABLE8}
    assert t8["VSCR (ours)"][2] == (86.29, 94.60, 64.19)
    assert t8["Baseline (ours)"][2][0] == 78.02
    assert [len(t.reported) for t in cmp.TABLES.values()] == [7, 18, 14, 30]


# ---------------------------------------------------------------------------------------------
# the notebooks, smoke profile


def _test_metrics(out_dir, name):
    """An independent evaluation of the notebooks' trained model `name` on the test split:
    features extracted here, ranked by evaluate.rank_metrics."""
    from vscr_core.experiments import features
    from vscr_core.train import load_data

    run = nbk.NotebookRun("check", "smoke", out_dir=out_dir)
    cfg = run.variant(name)
    ds = load_data(cfg, split="test")
    model = run.trained_model(name, progress=False)
    q = features(model, ds.query, cfg, progress=False)
    g = features(model, ds.gallery, cfg, progress=False)
    r = evaluate.rank_metrics(q, g, [s.pid for s in ds.query], [s.pid for s in ds.gallery],
                              junk="none")
    return r, ds, run


@pytest.mark.slow
def test_04_comparison(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    run_notebook("04_comparison")
    t5, meta = results.read_table("table5_uav_test", out_dir)
    assert meta["notebook"] == "04_comparison" and meta["profile"] == "smoke"
    assert meta["seeds"] == [0] and meta["models"] == ["baseline", "vscr"]
    rep = t5[t5["source"] == "reported (paper Table 5)"]
    assert rep["method"].tolist() == [r[0] for r in reported.TABLE5]
    assert rep[["rank1", "rank5", "rank10"]].to_numpy().tolist() == \
        [list(r[1:]) for r in reported.TABLE5]
    assert rep["mAP"].isna().all()
    meas = t5[t5["source"] == "measured"].set_index("variant")
    assert list(meas.index) == ["baseline", "vscr"]
    assert meas[list(cmp.METRICS)].stack().between(0, 100).all()
    for name in ("baseline", "vscr"):
        r, ds, run = _test_metrics(out_dir, name)
        assert meas.loc[name, "rank1"] == pytest.approx(100 * r.rank(1), abs=1e-3), name
        assert meas.loc[name, "mAP"] == pytest.approx(100 * r.mAP, abs=1e-3), name
        # experiments.run's evaluation path (another feature pass, in this process)
        cached = run.metrics(name, protocol={"split": "test"}, progress=False)
        for k in cmp.METRICS:
            assert meas.loc[name, k] == pytest.approx(100 * cached[k], abs=1e-3), (name, k)
    g = len(ds.gallery)
    chance = t5[t5["source"] == "chance (exact, measured protocol)"].iloc[0]
    assert chance["rank1"] == pytest.approx(100 / g, abs=1e-4)
    paper = t5[t5["source"] == "chance (paper's protocol)"].iloc[0]
    assert paper["rank1"] == pytest.approx(100 / 2208, abs=1e-4)

    curves, _ = results.read_table("fig7_cmc", out_dir)
    assert sorted(curves["rank"].unique()) == list(range(1, 21))
    for name, c in curves.groupby("variant"):
        assert np.all(np.diff(c["cmc"].to_numpy()) >= 0) and c["cmc"].between(0, 100).all()
        assert c.loc[c["rank"] == 1, "cmc"].iloc[0] == pytest.approx(meas.loc[name, "rank1"],
                                                                     abs=1e-3)
        assert c.loc[c["rank"] == 10, "cmc"].iloc[0] == pytest.approx(meas.loc[name, "rank10"],
                                                                      abs=1e-3)

    for number, table in ((6, "table6_veri776"), (7, "table7_vehicleid"),
                          (8, "table8_veriwild")):
        df, _ = results.read_table(table, out_dir)
        t = cmp.paper_table(number)
        assert len(df[df["source"].str.startswith("reported")]) == len(t.reported)
        m = df[df["source"] == "measured"]
        assert len(m) == 2 * len(t.protocols) and m[list(cmp.METRICS)].isna().all().all()
        assert m["note"].str.contains(f"dataset='{t.paper_dataset}'").all()
        assert df[df["source"].str.startswith("chance")]["rank1"].between(0, 1).all()
    t8, _ = results.read_table("table8_veriwild", out_dir)
    vscr = t8[t8["method"] == "VSCR (ours)"].set_index("subset")
    assert vscr.loc["large", "rank1"] == 86.29 and vscr.loc["small", "mAP"] == 75.79
    assert (out_dir / "figures" / "fig7_cmc.png").stat().st_size > 10_000


@pytest.mark.slow
def test_05_distractors(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    run_notebook("05_distractors")
    df, meta = results.read_table("fig8_distractors", out_dir)
    assert meta["notebook"] == "05_distractors" and meta["seeds"] == [0]
    r, ds, run = _test_metrics(out_dir, "baseline")
    counts = distractors.distractor_counts(len(ds.distractors))
    assert len(ds.distractors) > 0 and counts[-1] == len(ds.distractors)
    for (name, seed), c in df.groupby(["variant", "seed"]):
        c = c.sort_values("distractors")
        assert c["distractors"].tolist() == counts
        assert (c["gallery_size"] == len(ds.gallery) + c["distractors"]).all()
        assert c[list(cmp.METRICS)].stack().between(0, 100).all()
        # a distractor is never a match: each query's one true match can only move down
        for k in cmp.METRICS:
            assert np.all(np.diff(c[k].to_numpy()) <= 1e-9), (name, k)
        assert np.allclose(c["chance_rank1"], 100 / c["gallery_size"], atol=1e-4)
        plain = run.metrics(name, seed, protocol={"split": "test"}, progress=False)
        first = c.iloc[0]
        for k in cmp.METRICS:
            assert first[k] == pytest.approx(100 * plain[k], abs=1e-3), (name, k)
    base = df[(df["variant"] == "baseline") & (df["distractors"] == 0)].iloc[0]
    assert base["rank1"] == pytest.approx(100 * r.rank(1), abs=1e-3)
    assert (out_dir / "figures" / "fig8_distractors.png").stat().st_size > 10_000


def test_fig7_and_fig8_rebuild_from_the_run_folders_without_a_model(notebook_env, run_notebook,
                                                                     monkeypatch):
    """Notebooks 04 and 05 keep each model's CMC and distractor curve in its run folder (they are
    committed with the run's record), so the figures rebuild on a clone without checkpoints."""
    out_dir, _ = notebook_env
    for notebook, table in (("04_comparison", "fig7_cmc"), ("05_distractors", "fig8_distractors")):
        if not results.table_path(table, out_dir).exists():  # not yet run in this session
            run_notebook(notebook)
    run = nbk.NotebookRun("05_distractors", "smoke", out_dir=out_dir)
    kept = {name: sorted(p.name for p in experiments.run_dir(run.variant(name), run.runs_dir)
                         .glob("*.json") if p.name.startswith(("cmc-", "distractors-")))
            for name in cmp.MODELS}
    assert all(len(files) == 2 for files in kept.values()), kept

    def no_model(*args, **kwargs):
        raise AssertionError("a kept curve was computed again")

    monkeypatch.setattr(nbk.NotebookRun, "trained_model", no_model)
    fig8, _ = results.read_table("fig8_distractors", out_dir)
    pd.testing.assert_frame_equal(distractors.distractor_table(run), fig8, check_dtype=False)
    fig7, _ = results.read_table("fig7_cmc", out_dir)
    pd.testing.assert_frame_equal(cmp.cmc_curves(run), fig7, check_dtype=False)


# ---------------------------------------------------------------------------------------------
# without the data set: no measured numbers, and the chance level of the real layouts


def test_tables_without_their_data_set_leave_measured_rows_empty(tmp_path):
    """A run on VeRi-776 has no UAV test split: Table 5's measured rows stay empty and say what
    they need, Fig. 7 draws the reported points alone, Fig. 8 says why it is empty. Nothing is
    trained or read."""
    run = nbk.NotebookRun("04_comparison", "smoke", "veri776", str(tmp_path / "nowhere"),
                          out_dir=tmp_path)
    t5 = cmp.build_table(run, 5)
    meas = t5[t5["source"] == "measured"]
    assert meas["variant"].tolist() == ["baseline", "vscr"]
    assert meas[list(cmp.METRICS)].isna().all().all()
    assert meas["note"].str.contains("dataset='uav_veid'").all()
    assert not t5["source"].str.startswith("chance (exact").any()
    assert len(t5[t5["source"].str.startswith("reported")]) == len(reported.TABLE5)
    curves = cmp.cmc_curves(run)
    assert curves.empty
    png = cmp.plot_cmc(curves, t5, run.figure_path("fig7_cmc"))
    assert png.stat().st_size > 10_000 and not (tmp_path / "results").exists()
    fig8 = distractors.distractor_table(run)  # VeRi-776 has no distractor set: an empty curve
    assert fig8.empty and list(fig8.columns) == distractors.FIG8_COLUMNS
    assert "no distractor set" in distractors.fig8_statement(fig8)
    assert distractors.plot_distractors(fig8, run.figure_path("fig8_distractors")).is_file()
    assert not (tmp_path / "results").exists()
    assert "its measured rows need dataset='uav_veid'" in cmp.statement({5: t5}, curves)


def test_fig8_over_seeds_reports_means_and_leaves_the_verdict_to_the_interval(tmp_path):
    rows = [{"variant": v, "method": cmp.LABELS[v], "distractors": c, "gallery_size": 10 + c,
             "rank1": r1, "rank5": 90.0, "rank10": 95.0, "mAP": r1 + 5, "chance_rank1": 1.0,
             "chance_mAP": 2.0, "queries": 20, "seed": seed, "evaluated_on": "t"}
            for v, seed, c, r1 in [("baseline", 0, 0, 60), ("baseline", 0, 100, 40),
                                   ("baseline", 1, 0, 62), ("baseline", 1, 100, 44),
                                   ("vscr", 0, 0, 70), ("vscr", 0, 100, 60),
                                   ("vscr", 1, 0, 72), ("vscr", 1, 100, 58)]]
    df = pd.DataFrame(rows, columns=distractors.FIG8_COLUMNS)
    text = distractors.fig8_statement(df)
    assert "seeds [0, 1]" in text
    assert "rank-1 61.00 -> 42.00 % (-19.00 points)" in text  # baseline, mean of two seeds
    assert "rank-1 71.00 -> 59.00 % (-12.00 points)" in text  # VSCR
    assert "slower" not in text.replace("more slowly", "") and "claims.csv" in text
    assert distractors.plot_distractors(df, tmp_path / "fig8.png").stat().st_size > 10_000


def test_measured_chance_of_the_real_layouts(veri776_tree, vehicleid_tree, veriwild_tree):
    from vscr_core.config import PROFILES

    def cfg(name, root):
        return PROFILES["smoke"].config.override(**{"data.dataset": name, "data.root": str(root)})

    # VeRi-776 fixture: query 7 (camera 4) has one match left of 3 candidates after the
    # same-camera junk, query 9 has 2 matches among 4
    veri = experiments.measured_chance(cfg("veri776", veri776_tree), {})
    assert veri["queries"] == 2 and veri["rank1"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    # VehicleID fixture: 2 ids, so every draw has 2 gallery images and 3 queries
    vid = experiments.measured_chance(cfg("vehicleid", vehicleid_tree), {})
    assert (vid["queries"], vid["gallery"]) == (3, 2) and vid["rank1"] == pytest.approx(0.5)
    wild = experiments.measured_chance(cfg("veriwild", veriwild_tree), {"subset": "large"})
    assert wild["queries"] == 1 and 0 < wild["rank1"] <= 1
