"""Notebooks 02 (Table 2) and 03 (Tables 3, 4) in the smoke profile, read back and cross-checked."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vscr_core.paper import ablation, results


def _run_metrics(out_dir, run_name: str) -> dict:
    return json.loads((out_dir / "results" / "runs" / run_name / "metrics-val.json").read_text())


@pytest.mark.slow
def test_02_and_03_tables(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    run_notebook("02_branch_ablation")
    t2, meta = results.read_table("table2_branch_ablation", out_dir)
    assert meta["notebook"] == "02_branch_ablation" and meta["profile"] == "smoke"
    assert meta["split"] == "val"
    per_run, _ = results.read_table("table2_runs", out_dir)
    assert list(per_run["variant"]) == list(ablation.TABLE2) and set(per_run["seed"]) == {0}
    assert list(t2["variant"]) == list(ablation.TABLE2)
    assert list(t2["feature_dim"]) == [512, 1024, 512, 1024, 512, 1536, 512, 512]
    assert t2.set_index("variant").loc["multi_scale", "rank1_reported"] == 91.32
    for k in ("rank1", "mAP"):
        assert t2[f"{k}_measured"].between(0, 100).all()
    # every measured cell is its run's cached metrics, and the weakest row beats chance
    for variant, run_name in zip(ablation.TABLE2, meta["runs"]):
        m = _run_metrics(out_dir, run_name)
        row = t2.set_index("variant").loc[variant]
        assert row["rank1_measured"] == pytest.approx(100 * m["rank1"], abs=0.006)
        assert row["mAP_measured"] == pytest.approx(100 * m["mAP"], abs=0.006)
    assert t2["mAP_measured"].min() > t2["mAP_chance"].iloc[0]
    assert (out_dir / "figures" / "table2_branch_ablation.png").stat().st_size > 10_000

    runs_before = sorted(p.name for p in (out_dir / "results" / "runs").iterdir())
    run_notebook("03_view_ablation")
    t3, _ = results.read_table("table3_view_adversary", out_dir)
    t4, meta4 = results.read_table("table4_variants", out_dir)
    assert list(t3["variant"]) == ["baseline", "view3", "view_adversary"]
    assert list(t4["variant"]) == ["baseline", "view_adversary", "multi_scale", "vscr"]
    assert meta4["seeds"] == [0] and (t4["seeds"] == 1).all()
    # shared runs: Table 4's baseline and multi-scale are Table 2's rows (a) and (g), not retrained
    by2, by4 = t2.set_index("variant"), t4.set_index("variant")
    for v in ("baseline", "multi_scale"):
        assert by4.loc[v, "rank1_measured"] == by2.loc[v, "rank1_measured"]
        assert by4.loc[v, "mAP_measured"] == by2.loc[v, "mAP_measured"]
    runs_after = sorted(p.name for p in (out_dir / "results" / "runs").iterdir())
    new = sorted(set(runs_after) - set(runs_before))
    assert [n.rsplit("-", 2)[0] for n in new] == ["smoke-view3-s0", "smoke-view_adversary-s0",
                                                   "smoke-vscr-s0"]
    assert by4.loc["vscr", "rank1_reported"] == 91.98 and by4.loc["vscr", "mAP_reported"] == 95.21
    assert (out_dir / "figures" / "table4_variants.png").stat().st_size > 10_000


def _runs(values: dict[str, list[float]]) -> pd.DataFrame:
    """One row per (variant, seed), every metric set to the value."""
    return pd.DataFrame([{"variant": v, "seed": s, "feature_dim": 512,
                          **dict.fromkeys(ablation.METRICS, x)}
                         for v, xs in values.items() for s, x in enumerate(xs)])


def test_table4_statement_gives_each_difference_its_paired_interval_and_no_verdict():
    runs = _runs({"baseline": [40.0, 42.0, 41.0], "view_adversary": [41.0, 44.0, 41.5],
                  "multi_scale": [40.0, 42.0, 41.0], "vscr": [39.0, 42.5, 41.0]})
    table = ablation.table4(runs, "synth",
                            dict.fromkeys(ablation.METRICS, 0.01))
    text = ablation.table4_statement(table, runs, "test")
    d = np.array([1.0, 2.0, 0.5])  # view adversary - baseline, seed by seed
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert (f"view adversary over the baseline: +1.17 points rank1, 95 % interval "
            f"[{d.mean() - half:+.2f}, {d.mean() + half:+.2f}] over 3 paired seeds") in text
    assert "higher" not in text and "lower" not in text and "spread" not in text


def test_a_comparison_from_one_seed_has_no_interval():
    runs = _runs({"baseline": [40.0], "view3": [41.0], "view_adversary": [43.0]})
    table = ablation.table3(runs, "synth",
                            dict.fromkeys(ablation.METRICS, 0.01), 4)
    text = ablation.table3_statement(table, runs, "val")
    assert "4-view over 3-view: +2.00 points rank1 (one seed: no interval)" in text
