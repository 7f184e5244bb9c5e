"""Notebook 09 (the claims) in the smoke profile, and the verdict rule it applies."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vscr_core import claims
from vscr_core import notebook as nbk


def test_verdict_rule():
    v, thr = claims.verdict(3.0, 1.0, 3, 3)
    assert v == claims.REPRODUCED and thr == pytest.approx(2 * math.sqrt(2 / 3))
    assert claims.verdict(-3.0, 1.0, 3, 3)[0] == claims.CONTRADICTED
    assert claims.verdict(1.0, 1.0, 3, 3)[0] == claims.WITHIN_NOISE
    assert claims.verdict(1.0, 1.0, 3, 3, kind="no_gain")[0] == claims.REPRODUCED
    assert claims.verdict(5.0, 1.0, 1, 1, kind="no_gain")[0] == claims.CONTRADICTED
    v, thr = claims.verdict(-2.0, float("nan"), 1, 1)
    assert math.isnan(thr) and "against the claimed direction" in v
    assert claims.verdict(0.5, float("nan"), 1, 1, kind="no_gain")[0] == \
        "one seed, no noise estimate"


def test_seed_noise_pools_variances():
    runs = pd.DataFrame({"variant": ["a", "a", "b", "b", "c"], "rank1": [1.0, 3.0, 5.0, 9.0, 7.0]})
    assert claims.seed_noise(runs) == pytest.approx(math.sqrt((2.0 + 8.0) / 2))
    assert math.isnan(claims.seed_noise(runs[runs["variant"] == "c"]))


def test_update_readme_replaces_only_the_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{claims.README_START}\nold\n{claims.README_END}\ntail\n")
    claims.update_readme(readme, "new table")
    assert readme.read_text() == (f"intro\n{claims.README_START}\n\nnew table\n\n"
                                  f"{claims.README_END}\ntail\n")
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="lacks the markers"):
        claims.update_readme(readme, "x")
    assert readme.read_text() == "no markers"


@pytest.mark.slow
def test_09_claims(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    for table, notebook in (("viewpoint_fig6_summary", "01_viewpoint"),
                            ("table2_branch_ablation", "02_branch_ablation"),
                            ("table4_variants", "03_view_ablation"),
                            ("table5_uav_test", "04_comparison"),
                            ("fig8_distractors", "05_distractors")):
        if not nbk.table_path(table, out_dir).is_file():  # another test may have run it
            run_notebook(notebook)
    run_notebook("09_claims")
    table, meta = nbk.read_table("claims", out_dir)
    assert meta["notebook"] == "09_claims"
    assert {"Table 2 (e) vs (d)", "Table 3", "Table 4 (d) vs (a)", "Table 5", "Fig. 8",
            "Fig. 6"} <= set(table["source"])
    # each measured difference is the one in its table: VSCR over the baseline in Table 4
    t4 = nbk.read_table("table4_variants", out_dir)[0].set_index("variant")
    row = table[table["source"] == "Table 4 (d) vs (a)"].iloc[0]
    want = t4.loc["vscr", "rank1_measured"] - t4.loc["baseline", "rank1_measured"]
    assert float(row["measured"].split()[0]) == pytest.approx(want, abs=0.006)
    assert row["reported"].startswith("+8.46")  # 91.98 - 83.52
    # smoke: one seed per model, so no ablation verdict claims more than the sign
    ablations = table[table["source"].str.startswith(("Table", "Fig. 8"))]
    assert len(meta["seeds"]) == 1 and ablations["verdict"].str.startswith("one seed").all()
    assert (out_dir / "figures" / "claims.png").stat().st_size > 10_000
    page = (out_dir / "figures" / "index.html").read_text()
    assert "claims.png" in page and "results/claims.csv" in page
