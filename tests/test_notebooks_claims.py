"""Notebook 09 (the claims) in the smoke profile, and the intervals and verdicts it applies."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vscr_core.paper import claims, results
from vscr_core.paper import readme as sections


def test_gain_verdicts_follow_the_interval():
    assert claims.verdict(0.1, 2.0) == claims.REPRODUCED
    assert claims.verdict(-2.0, -0.1) == claims.CONTRADICTED
    assert claims.verdict(-0.1, 2.0) == claims.INCONCLUSIVE
    assert claims.verdict(math.nan, math.nan) == claims.INCONCLUSIVE  # one seed: no interval


def test_equivalence_verdicts_need_the_whole_interval_inside_the_margin():
    m = claims.EQUIVALENCE_MARGIN
    assert m == 1.0  # fixed before the study ran
    assert claims.verdict(-0.5, 0.5, claims.EQUIVALENT, m) == claims.REPRODUCED
    assert claims.verdict(0.2, 1.4, claims.EQUIVALENT, m) == claims.INCONCLUSIVE  # straddles +m
    assert claims.verdict(-3.0, 3.0, claims.EQUIVALENT, m) == claims.INCONCLUSIVE  # too wide
    assert claims.verdict(1.2, 3.0, claims.EQUIVALENT, m) == claims.CONTRADICTED
    assert claims.verdict(-3.0, -1.2, claims.EQUIVALENT, m) == claims.CONTRADICTED
    # a small difference measured imprecisely is not evidence of no effect
    assert claims.verdict(math.nan, math.nan, claims.EQUIVALENT, m) == claims.INCONCLUSIVE
    with pytest.raises(ValueError, match="margin"):
        claims.verdict(-0.5, 0.5, claims.EQUIVALENT)


def test_paired_interval_matches_a_hand_computation():
    a = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    b = pd.Series([7.0, 2.0, 4.0], index=[2, 0, 1])  # same seeds, another order
    iv = claims.difference_interval(a, b)
    # differences by seed: 1, 2, 4; mean 7/3; sd sqrt(7/3); se sqrt(7/9); t(0.975, 2) = 4.302653
    half = 4.302653 * math.sqrt(7 / 9)
    assert iv.paired and iv.n_seeds == 3 and iv.df == 2
    assert iv.mean == pytest.approx(7 / 3)
    assert (iv.low, iv.high) == pytest.approx((7 / 3 - half, 7 / 3 + half), abs=1e-5)


def test_welch_interval_when_the_seeds_differ():
    a = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    b = pd.Series([2.0, 4.0, 6.0, 8.0], index=[0, 1, 2, 3])
    iv = claims.difference_interval(a, b)
    # variances of the means 1/3 and 20/12; se sqrt(2); Welch-Satterthwaite df
    df = 4 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)
    assert not iv.paired and iv.n_seeds == 3
    assert iv.df == pytest.approx(df) and iv.se == pytest.approx(math.sqrt(2))
    assert iv.mean == pytest.approx(3.0)
    assert iv.high - iv.mean == pytest.approx(stats.t.ppf(0.975, df) * math.sqrt(2))
    one = claims.difference_interval(a.iloc[:1], b.iloc[:1])
    assert one.n_seeds == 1 and math.isnan(one.low) and math.isnan(one.high)


def test_p_values_agree_with_the_intervals():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = pd.Series(rng.normal(0, 1, 5))
        b = a + rng.normal(rng.uniform(-2, 2), 1, 5)
        iv = claims.difference_interval(a, b)
        assert (claims.p_value(iv) < 0.05) == (claims.verdict(iv.low, iv.high) != "inconclusive")
        v = claims.verdict(iv.low, iv.high, claims.EQUIVALENT, 1.0)
        p = claims.p_value(iv, claims.EQUIVALENT, 1.0)
        assert (p < 0.05) == (v != claims.INCONCLUSIVE)


def test_holm_steps_down_and_skips_claims_without_an_interval():
    got = claims.holm([0.01, 0.04, 0.03, math.nan])  # family of 3: 0.01 <= 0.05/3, 0.03 > 0.025
    assert got.tolist() == [True, False, False, False]
    assert claims.holm([0.01, 0.02, 0.04]).tolist() == [True, True, True]  # /3, /2, /1


def test_the_claims_figure_says_whether_a_verdict_survives_holm():
    row = pd.Series({"verdict": claims.REPRODUCED, "n_seeds": 5, "holm": "no"})
    assert claims.verdict_label(row) == "reproduced (n = 5); not after Holm"
    assert claims.verdict_label(row.replace("no", "yes")).endswith("; survives Holm")
    undecided = pd.Series({"verdict": claims.INCONCLUSIVE, "n_seeds": 2, "holm": math.nan})
    assert claims.verdict_label(undecided) == "inconclusive (n = 2)"


def test_update_readme_replaces_only_the_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    start, end = sections.RESULTS_START, sections.RESULTS_END
    readme.write_text(f"intro\n{start}\nold\n{end}\ntail\n")
    sections.update_readme(readme, "new table", start, end)
    assert readme.read_text() == f"intro\n{start}\n\nnew table\n\n{end}\ntail\n"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="lacks the markers"):
        sections.update_readme(readme, "x", start, end)
    assert readme.read_text() == "no markers"


def test_seeds_for_half_width_against_a_hand_computation():
    # sd 2: t(0.975, 8) 2 / 3 = 1.537 > 1.5, t(0.975, 9) 2 / sqrt(10) = 1.431 <= 1.5
    assert claims.seeds_for_half_width(2.0) == 10
    assert claims.seeds_for_half_width(0.0) == 2
    assert claims.seeds_for_half_width(math.nan) is None
    assert claims.seeds_for_half_width(100.0, most=50) is None


def test_resolving_power_reads_the_paired_table4_differences(tmp_path):
    rank1 = {"baseline": [50.0, 52.0, 51.0], "view_adversary": [51.0, 54.0, 51.5],
             "multi_scale": [53.0, 53.0, 53.0], "vscr": [55.0, 56.0, 54.0],
             "view3": [50.5, 52.5, 51.5]}
    runs = pd.DataFrame([{"variant": v, "seed": s, "rank1": r}
                         for v, rs in rank1.items() for s, r in enumerate(rs)])
    results.write_table(runs, "table4_runs", tmp_path, {})
    table = claims.resolving_power(tmp_path)
    assert tuple(table.columns) == claims.RESOLUTION_COLUMNS
    power = table.set_index("source")
    assert set(power.index) == {"Table 4 (b) vs (a)", "Table 4 (c) vs (a)", "Table 4 (d) vs (c)",
                                "Table 4 (d) vs (a)"}  # Table 3's claims are not Table 4's
    d = np.array([1.0, 2.0, 0.5])  # the view adversary minus the baseline, seed by seed
    row = power.loc["Table 4 (b) vs (a)"]
    assert row["n_seeds"] == 3 and row["sd_differences"] == pytest.approx(d.std(ddof=1), abs=0.01)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert row["half_width"] == pytest.approx(half, abs=0.01)
    assert row["seeds_for_target"] == claims.seeds_for_half_width(d.std(ddof=1))
    text = claims.resolution_statement(table)
    assert f"+-{half:.2f} from 3 seeds" in text


def test_the_converged_reading_drops_failed_runs_and_keeps_the_rest_paired(tmp_path):
    rank1 = {"baseline": [50.0, 52.0, 51.0], "view_adversary": [51.0, 54.0, 51.5],
             "multi_scale": [53.0, 53.0, 53.0], "vscr": [55.0, 59.0, 54.0],
             "view3": [50.5, 52.5, 51.5], "t2_d": [50.0, 51.0, 52.0], "t2_e": [51.0, 52.0, 54.0]}
    runs = pd.DataFrame([{"variant": v, "seed": s, "rank1": r}
                         for v, rs in rank1.items() for s, r in enumerate(rs)])
    results.write_table(runs[runs["variant"].str.startswith("t2")], "table2_runs", tmp_path, {})
    results.write_table(runs[~runs["variant"].str.startswith("t2")], "table4_runs", tmp_path, {})
    summary = pd.DataFrame({"variant": list(rank1), "rank1_reported": 80.0})
    for name in ("table2_branch_ablation", "table3_view_adversary", "table4_variants"):
        results.write_table(summary, name, tmp_path, {})
    f8 = pd.DataFrame([{"variant": v, "seed": s, "distractors": n, "rank1": r - (n > 0) * drop}
                       for v, drop in (("baseline", 10.0), ("vscr", 6.0))
                       for s, r in enumerate(rank1[v]) for n in (0, 1000)])
    results.write_table(f8, "fig8_distractors", tmp_path, {})
    assert claims.converged_reading(tmp_path) is None  # no training summary: not checked
    failed = runs.assign(converged=[(v, s) != ("vscr", 1) for v, s in
                                    zip(runs["variant"], runs["seed"])])
    results.write_table(failed, "training_summary", tmp_path, {})

    reading = claims.converged_reading(tmp_path)
    assert tuple(reading.columns) == claims.CONVERGED_COLUMNS
    rows = reading.set_index("source")
    vscr = rows.loc["Table 4 (d) vs (a)"]  # seeds 0 and 2 only, still paired
    d = np.array([55.0 - 50.0, 54.0 - 51.0])
    half = stats.t.ppf(0.975, 1) * d.std(ddof=1) / math.sqrt(2)
    assert vscr["n_seeds"] == 2 and vscr["left_out"] == "vscr s1"
    assert [vscr["measured"], vscr["ci_low"], vscr["ci_high"]] == pytest.approx(
        [d.mean(), d.mean() - half, d.mean() + half], abs=0.01)
    fig8 = rows.loc["Fig. 8"]
    assert fig8["n_seeds"] == 2 and fig8["measured"] == pytest.approx(4.0)
    primary = pd.DataFrame(claims.table_claims(tmp_path)).set_index("source")
    for source in ("Table 4 (b) vs (a)", "Table 2 (e) vs (d)"):  # no failed run: as primary
        assert rows.loc[source, "left_out"] == "" and rows.loc[source, "n_seeds"] == 3
        assert rows.loc[source, "ci_low"] == primary.loc[source, "ci_low"]
    assert primary.loc["Table 4 (d) vs (a)", "n_seeds"] == 3  # the primary keeps every seed
    assert sections._converged_section(tmp_path) == []  # notebook 09 has not written it
    results.write_table(reading, "claims_converged_runs", tmp_path, {})
    text = "\n".join(sections._converged_section(tmp_path))
    assert "Secondary reading" in text and "| vscr s1 |" in text


@pytest.mark.parametrize("split, table5_row", [("val", True), ("test", False)])
def test_table5_gets_its_own_row_only_where_table4_was_not_measured_on_the_test_split(
        tmp_path, split, table5_row):
    runs = pd.DataFrame({"variant": ["baseline", "vscr"] * 2, "seed": [0, 0, 1, 1],
                         "rank1": [40.0, 43.0, 41.0, 45.0]})
    results.write_table(runs, "table4_runs", tmp_path, {"split": split})
    t5 = pd.DataFrame({"source": ["reported (paper Table 5)", "measured", "measured"],
                       "variant": ["vscr", "baseline", "vscr"], "rank1": [70.0, 40.0, 43.0]})
    results.write_table(t5, "table5_uav_test", tmp_path, {})
    f8 = runs.assign(distractors=0)
    results.write_table(pd.concat([f8, f8.assign(distractors=100, rank1=f8["rank1"] - 5)]),
                        "fig8_distractors", tmp_path, {})
    sources = [r["source"] for r in claims.test_split_claims(tmp_path)]
    assert sources == (["Table 5", "Fig. 8"] if table5_row else ["Fig. 8"])


@pytest.mark.slow
def test_09_claims(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    for table, notebook in (("viewpoint_fig6_summary", "01_viewpoint"),
                            ("table2_branch_ablation", "02_branch_ablation"),
                            ("table4_variants", "03_view_ablation"),
                            ("table5_uav_test", "04_comparison"),
                            ("fig8_distractors", "05_distractors")):
        if not results.table_path(table, out_dir).is_file():  # another test may have run it
            run_notebook(notebook)
    run_notebook("09_claims")
    table, meta = results.read_table("claims", out_dir)
    assert meta["notebook"] == "09_claims"
    assert {"Table 2 (e) vs (d)", "Table 3", "Table 4 (d) vs (a)", "Table 5", "Fig. 8",
            "Fig. 6"} <= set(table["source"])
    assert tuple(table.columns) == claims.COLUMNS
    power, _ = results.read_table("table4_resolution", out_dir)
    assert tuple(power.columns) == claims.RESOLUTION_COLUMNS and len(power) == 4
    assert (power["n_seeds"] == 1).all() and power["half_width"].isna().all()  # smoke: one seed
    assert meta["tested"] == claims.tested(table) and meta["margin"] == claims.EQUIVALENCE_MARGIN
    # each measured difference is the one in its runs table: VSCR over the baseline in Table 4
    runs = results.read_table("table4_runs", out_dir)[0].groupby("variant")["rank1"].mean()
    row = table[table["source"] == "Table 4 (d) vs (a)"].iloc[0]
    assert row["measured"] == pytest.approx(runs["vscr"] - runs["baseline"], abs=0.006)
    assert row["reported"] == pytest.approx(8.46)  # 91.98 - 83.52
    view3 = table[table["claim"] == "a 3-view adversary beats the baseline"].iloc[0]
    assert view3["reported"] == pytest.approx(2.19)  # Table 3: 85.71 - 83.52
    # smoke: one seed per model, so no ablation claim has an interval or a verdict
    ablations = table[table["source"].str.startswith(("Table", "Fig. 8"))]
    assert len(meta["seeds"]) == 1 and (ablations["verdict"] == claims.INCONCLUSIVE).all()
    assert ablations["ci_low"].isna().all() and (ablations["holm"].fillna("") == "").all()
    # the paper's 98.29 % is on VeRi-776 with 3 views: not comparable with the synthetic set
    fig6 = table[table["source"] == "Fig. 6 (VeRi-776, 3 views)"]
    summary = results.read_table("viewpoint_fig6_summary", out_dir)[0]
    reported = summary["accuracy_reported"].dropna()
    assert len(fig6) == len(reported[:1])  # the row exists where the summary has the number
    assert (fig6["verdict"] == claims.NOT_COMPARABLE).all()
    assert (out_dir / "figures" / "claims.png").stat().st_size > 10_000
    page = (out_dir / "figures" / "index.html").read_text()
    assert "claims.png" in page and "results/claims.csv" in page
    # the README's results section, as `make reproduce` writes it from these tables
    section = sections.results_section(out_dir)
    assert section.startswith("Last run: profile `smoke`") and "| Table 4 (d) vs (a) |" in section
    assert "Secondary reading" not in section  # smoke runs are not checked for convergence
    assert not results.table_path("claims_converged_runs", out_dir).exists()


@pytest.mark.parametrize("dataset, views, want", [("synth", 4, claims.NOT_COMPARABLE),
                                                  ("veri776", 3, claims.CONTRADICTED)])
def test_fig6_absolute_accuracy_is_compared_only_on_the_papers_setting(tmp_path, dataset, views,
                                                                       want):
    runs = pd.DataFrame({"num_views": views, "fraction": [0.25] * 3 + [1.0] * 3,
                         "seed": [0, 1, 2] * 2,
                         "accuracy": [0.58, 0.60, 0.59, 0.60, 0.61, 0.62]})
    summary = pd.DataFrame({"fraction": [0.25, 1.0], "accuracy_reported": [98.29, np.nan]})
    results.write_table(runs, "viewpoint_fig6", tmp_path, {"dataset": dataset})
    results.write_table(summary, "viewpoint_fig6_summary", tmp_path, {"dataset": dataset})
    labels, level = claims.viewpoint_claims(tmp_path)
    assert labels["verdict"] == claims.INCONCLUSIVE  # +2 points, 3 seeds each: not within +-1
    assert level["verdict"] == want and level["reported"] == pytest.approx(98.29)
    if want == claims.NOT_COMPARABLE:  # the mean accuracy at 25 %, with its interval
        assert level["measured"] == pytest.approx(59.0) and level["ci_low"] < 59.0
    else:  # measured minus reported, far below the margin
        assert level["measured"] == pytest.approx(59.0 - 98.29)


def test_the_results_section_says_how_the_study_trained_and_how_to_rerun_it(tmp_path):
    summary = pd.DataFrame({"run": ["cpu-baseline-s0", "cpu-vscr-s0", "cpu-vscr-s1"],
                            "train_hours": [1.0, 2.0, 3.0],
                            "train_hours_at_median_speed": [0.5, 1.0, 1.5],
                            "hardware": ["AMD", "Xeon", "Xeon"],
                            "converged": [True, False, True]})
    assert sections._study_section(tmp_path) == []  # quick and smoke have no summary
    results.write_table(summary, "training_summary", tmp_path, {})
    text = "\n".join(sections._study_section(tmp_path, reproduce_minutes=12.4))
    assert "trained for 3.0 h at each run's median epoch speed (6.0 h as ran" in text
    assert "AMD: 0.5 h; Xeon: 2.5 h" in text
    assert "2 of them met the convergence rule" in text and "not converged: `cpu-vscr-s0`." in text
    assert "`.venv/bin/python -m vscr_core.paper.study --profile cpu`" in text
    assert "took 12 min on " in text
