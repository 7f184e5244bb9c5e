"""Which of the paper's claims the measured tables reproduce: the verdicts of notebook 09 and of
the README's results section.

Every claim is a comparison the paper makes (A beats B, or C adds little). The measured difference
is read from the tables the notebooks wrote; it counts as beyond noise when it exceeds twice its
standard error, with the seed-to-seed spread pooled over Table 4's repeated runs (the only
repeated trainings). With a single seed per model there is no noise estimate, and a verdict says
so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vscr_core.notebook import read_table

REPRODUCED, CONTRADICTED, WITHIN_NOISE = "reproduced", "not reproduced", "within noise"


@dataclass(frozen=True)
class Claim:
    key: str
    text: str  # the claim, in this project's words
    source: str  # the paper's table or figure
    kind: str  # "gain": a > 0 is the claim; "no_gain": |a| small is the claim


def seed_noise(runs: pd.DataFrame, metric: str = "rank1") -> float:
    """Pooled standard deviation over seeds of `metric` (%), from a table with one row per run
    (variant, seed, metric); NaN when no variant has two seeds."""
    var = runs.groupby("variant")[metric].var(ddof=1).dropna()
    return float(np.sqrt(var.mean())) if len(var) else float("nan")


def verdict(diff: float, noise: float, n_a: int, n_b: int, kind: str = "gain"
            ) -> tuple[str, float]:
    """(verdict, threshold) for a measured difference of means over n_a and n_b seeds, signed so
    that a gain claim predicts a positive difference."""
    threshold = 2 * noise * np.sqrt(1 / n_a + 1 / n_b)
    if np.isnan(threshold):
        if kind == "no_gain":
            return "one seed, no noise estimate", threshold
        direction = "in" if diff > 0 else "against"
        return f"one seed, no noise estimate ({direction} the claimed direction)", threshold
    if kind == "no_gain":
        return (REPRODUCED if abs(diff) <= threshold else CONTRADICTED), threshold
    if abs(diff) <= threshold:
        return WITHIN_NOISE, threshold
    return (REPRODUCED if diff > 0 else CONTRADICTED), threshold


def _row(claim: Claim, reported: float | None, diff: float, unit: str, noise: float,
         n_a: int, n_b: int, evidence: str) -> dict:
    v, thr = verdict(diff, noise, n_a, n_b, claim.kind)
    return {"claim": claim.text, "source": claim.source,
            "reported": "" if reported is None else f"{reported:+.2f} {unit}",
            "measured": f"{diff:+.2f} {unit}", "noise_threshold": round(thr, 2),
            "verdict": v, "evidence": evidence}


# (a, b, claim): the claim is that b beats a (kind gain) or matches it (kind no_gain), in rank-1.
TABLE_CLAIMS = (
    ("table2_branch_ablation", "t2_d", "t2_e",
     Claim("mscl_vs_fuse_2", "MSCL gives a better f than fusing two branches", "Table 2 (e) vs (d)",
           "gain")),
    ("table2_branch_ablation", "t2_f", "multi_scale",
     Claim("mscl_vs_fuse_3", "MSCL beats fusing three branches, with a third of the width",
           "Table 2 (g) vs (f)", "gain")),
    ("table2_branch_ablation", "t2_c", "t2_e",
     Claim("separate_weights", "separate res5 weights per branch beat shared ones",
           "Table 2 (e) vs (c)", "gain")),
    ("table2_branch_ablation", "t2_e", "multi_scale",
     Claim("third_branch", "a third branch (d = 3) helps", "Table 2 (g) vs (e)", "gain")),
    ("table2_branch_ablation", "multi_scale", "t2_h",
     Claim("fourth_branch", "a fourth branch adds little", "Table 2 (h) vs (g)", "no_gain")),
    ("table3_view_adversary", "baseline", "view3",
     Claim("view3", "a 3-view adversary beats the baseline", "Table 3", "gain")),
    ("table3_view_adversary", "view3", "view_adversary",
     Claim("view4_vs_3", "4 view classes beat 3", "Table 3", "gain")),
    ("table4_variants", "baseline", "view_adversary",
     Claim("view_adversary", "the view adversary beats the baseline", "Table 4 (b) vs (a)",
           "gain")),
    ("table4_variants", "baseline", "multi_scale",
     Claim("multi_scale", "multi-scale training with MSCL beats the baseline",
           "Table 4 (c) vs (a)", "gain")),
    ("table4_variants", "multi_scale", "vscr",
     Claim("vscr_vs_ms", "adding the view adversary to multi-scale helps (VSCR)",
           "Table 4 (d) vs (c)", "gain")),
    ("table4_variants", "baseline", "vscr",
     Claim("vscr", "VSCR beats the baseline", "Table 4 (d) vs (a)", "gain")),
)


def table_claims(out_dir=None, metric: str = "rank1") -> list[dict]:
    """Verdicts for the ablation claims of Tables 2-4 whose tables exist under out_dir."""
    runs, _ = read_table("table4_runs", out_dir)
    noise = seed_noise(runs, metric)
    rows, tables = [], {}
    for name, a, b, claim in TABLE_CLAIMS:
        if name not in tables:
            tables[name] = read_table(name, out_dir)[0].set_index("variant")
        t = tables[name]
        if a not in t.index or b not in t.index:
            continue
        diff = t.loc[b, f"{metric}_measured"] - t.loc[a, f"{metric}_measured"]
        rep = t.loc[b, f"{metric}_reported"] - t.loc[a, f"{metric}_reported"]
        rows.append(_row(claim, None if pd.isna(rep) else float(rep), float(diff),
                         f"pts {metric}", noise, int(t.loc[a, "seeds"]), int(t.loc[b, "seeds"]),
                         f"results/{name}.csv"))
    return rows


def viewpoint_claims(out_dir=None) -> list[dict]:
    """Fig. 6: more labels add little; and the absolute accuracy the paper reports."""
    s, _ = read_table("viewpoint_fig6_summary", out_dir)
    s = s.sort_values("fraction")
    lo, hi = s.iloc[0], s.iloc[-1]
    noise = float(np.sqrt(np.nanmean(s["accuracy_measured_std"] ** 2)))
    n = int(lo["seeds"])
    gain = float(hi["accuracy_measured_mean"] - lo["accuracy_measured_mean"])
    rows = [_row(Claim("labels", f"{100 * lo['fraction']:.0f} % of the view labels is nearly as "
                       f"good as {100 * hi['fraction']:.0f} %", "Fig. 6", "no_gain"),
                 None, gain, "pts accuracy", noise, n, n, "results/viewpoint_fig6_summary.csv")]
    reported = s["accuracy_reported"].dropna()
    if len(reported):
        acc = float(lo["accuracy_measured_mean"])
        ok = acc >= float(reported.iloc[0]) - 2 * (noise if not np.isnan(noise) else 0)
        rows.append({"claim": f"the view classifier is accurate with "
                              f"{100 * lo['fraction']:.0f} % of the labels",
                     "source": "Fig. 6 (VeRi-776)", "reported": f"{reported.iloc[0]:.2f} %",
                     "measured": f"{acc:.2f} %", "noise_threshold": round(2 * noise, 2),
                     "verdict": REPRODUCED if ok else CONTRADICTED,
                     "evidence": "results/viewpoint_fig6_summary.csv"})
    return rows


def test_split_claims(out_dir=None, metric: str = "rank1") -> list[dict]:
    """Table 5 (VSCR beats the baseline on the test split) and Fig. 8 (VSCR's rank-1 falls more
    slowly as distractors join the gallery), with Table 4's seed noise: both use one seed."""
    noise = seed_noise(read_table("table4_runs", out_dir)[0], metric)
    t5, _ = read_table("table5_uav_test", out_dir)
    measured = t5[t5["source"] == "measured"].set_index("variant")
    reported = t5[t5["source"].str.startswith("reported")].set_index("method")
    rows = []
    if {"baseline", "vscr"} <= set(measured.index) and measured[metric].notna().all():
        diff = float(measured.loc["vscr", metric] - measured.loc["baseline", metric])
        best_other = reported.drop(index=[m for m in reported.index if "VSCR" in m])[metric]
        vscr = reported.loc[[m for m in reported.index if "VSCR" in m][0], metric]
        rows.append(_row(Claim("test", "VSCR beats the baseline on the test split", "Table 5",
                               "gain"), None, diff, f"pts {metric}", noise, 1, 1,
                         f"results/table5_uav_test.csv (the paper has no baseline row there: "
                         f"VSCR {vscr:.2f} %, best other method {best_other.max():.2f} %)"))
    f8, _ = read_table("fig8_distractors", out_dir)
    drops = {}
    for name, g in f8.groupby("variant"):
        g = g.sort_values("distractors")
        drops[name] = float(g[metric].iloc[0] - g[metric].iloc[-1])
    if {"baseline", "vscr"} <= set(drops):
        rows.append(_row(Claim("distractors", "VSCR's rank-1 falls more slowly than the "
                                              "baseline's as distractors are added", "Fig. 8",
                               "gain"),
                         None, drops["baseline"] - drops["vscr"], f"pts {metric} drop", noise,
                         1, 1, f"results/fig8_distractors.csv (0 to {f8['distractors'].max()})"))
    return rows


def plot_claims(claims: pd.DataFrame, path) -> Path:
    """One bar per claim: the measured difference in the claim's direction, the noise threshold
    as a grey band, the verdict written beside the axes and coded by colour."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    from vscr_core.files import save_figure

    colours = {REPRODUCED: "#2a9d4b", CONTRADICTED: "#c8382c", WITHIN_NOISE: "#999999"}
    values = np.array([float(str(m).split()[0]) for m in claims["measured"]])
    y = np.arange(len(claims))[::-1]
    fig = Figure(figsize=(13, 0.55 * len(claims) + 1.8), layout="constrained")
    ax = fig.subplots()
    side = blended_transform_factory(ax.transAxes, ax.transData)
    for yi, v, thr, verdict_ in zip(y, values, claims["noise_threshold"], claims["verdict"]):
        if not pd.isna(thr):
            ax.add_patch(Rectangle((-thr, yi - 0.4), 2 * thr, 0.8, color="#e6e6e6", zorder=0))
        ax.barh(yi, v, color=colours.get(verdict_, "#6a8fc9"), height=0.6)
        ax.text(0.73, yi, textwrap.fill(verdict_, 26), transform=side, va="center", fontsize=8,
                color=colours.get(verdict_, "#33518a"))
    lim = 1.1 * max(np.abs(values).max(), np.nanmax(claims["noise_threshold"].to_numpy(
        dtype=float), initial=0), 1.0)
    ax.set_xlim(-lim, 2.8 * lim)  # the right part holds the verdicts
    ax.axvline(1.15 * lim, color="#cccccc", lw=0.8)
    ax.set_xticks([t for t in ax.get_xticks() if -lim <= t <= lim])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [textwrap.fill(f"{c} ({s})", 55) for c, s in
                      zip(claims["claim"], claims["source"])], fontsize=8)
    ax.set_xlabel("measured difference in the claim's direction (points); grey band: twice the "
                  "standard error from seed noise")
    ax.set_title("The paper's claims on this project's data: measured effect and verdict")
    return save_figure(fig, path)


def claims_table(out_dir=None) -> pd.DataFrame:
    """Every claim of the paper this project checks, with its verdict, from the tables under
    out_dir (all notebooks 00-05 must have run)."""
    return pd.DataFrame(table_claims(out_dir) + test_split_claims(out_dir)
                        + viewpoint_claims(out_dir))



README_START = "<!-- results: written by `make reproduce` (vscr_core.claims.readme_section) -->"
README_END = "<!-- end of results -->"


def _md(df: pd.DataFrame) -> str:
    cells = df.astype(object).where(df.notna(), "")
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in cells.to_numpy()]
    return "\n".join(lines)


def _pm(df: pd.DataFrame, k: str) -> pd.Series:
    std = df[f"{k}_measured_std"]
    return [f"{m:.2f}" + ("" if pd.isna(s) else f" ± {s:.2f}")
            for m, s in zip(df[f"{k}_measured"], std)]


def readme_section(out_dir=None) -> str:
    """The README's results: Tables 4, 2 and 5 (measured beside reported) and the claims, read
    from the tables under out_dir."""
    t4, meta = read_table("table4_variants", out_dir)
    t2, _ = read_table("table2_branch_ablation", out_dir)
    t5, _ = read_table("table5_uav_test", out_dir)
    claims, _ = read_table("claims", out_dir)
    head = f"Last run: profile `{meta['profile']}`, commit `{meta['commit'][:12]}`."
    table4 = pd.DataFrame({"Table 4 (validation)": t4["label"], "seeds": t4["seeds"],
                           "rank-1 measured": _pm(t4, "rank1"), "mAP measured": _pm(t4, "mAP"),
                           "rank-1 reported": t4["rank1_reported"],
                           "mAP reported": t4["mAP_reported"]})
    table2 = pd.DataFrame({"Table 2 (validation, 1 seed)": t2["label"],
                           "rank-1 measured": t2["rank1_measured"],
                           "mAP measured": t2["mAP_measured"],
                           "rank-1 reported": t2["rank1_reported"],
                           "mAP reported": t2["mAP_reported"]})
    rows5 = t5[t5["source"].isin(["measured"]) | t5["source"].str.startswith("chance (exact")]
    table5 = rows5[["method", "source", "rank1", "rank5", "rank10", "mAP"]].round(2)
    chance = (f"Chance on the validation split: rank-1 {t4['rank1_chance'].iloc[0]:.2f} %, "
              f"mAP {t4['mAP_chance'].iloc[0]:.2f} %.")
    return "\n\n".join([
        head, _md(table4), chance, _md(table2),
        "Test split (Table 5; the paper's VSCR: 70.59 / 88.33 / 92.51 on UAV-VeID test):",
        _md(table5),
        "Which of the paper's claims these runs reproduce (`results/claims.csv`, notebook 09; a "
        "difference counts when it exceeds twice its standard error from the seed-to-seed "
        "spread of Table 4):",
        _md(claims[["claim", "source", "reported", "measured", "noise_threshold", "verdict"]]),
    ])


def update_readme(readme: Path, section: str) -> None:
    """Replace the text between README_START and README_END in `readme` (atomically)."""
    from vscr_core.files import atomic_write_bytes

    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} lacks the markers {README_START!r} ... {README_END!r}")
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    atomic_write_bytes(readme, f"{before}{README_START}\n\n{section}\n\n{README_END}{after}"
                       .encode())


__all__ = ["CONTRADICTED", "README_END", "README_START", "REPRODUCED", "TABLE_CLAIMS",
           "WITHIN_NOISE", "Claim", "claims_table", "plot_claims", "readme_section",
           "seed_noise", "table_claims", "test_split_claims", "update_readme", "verdict",
           "viewpoint_claims"]
