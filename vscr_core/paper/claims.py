"""Which of the paper's claims the measured tables support: the verdicts of notebook 09 and of
the README's results section (vscr_core.paper.readme).

Every claim compares two settings (B beats A, or B adds little to A). The measured difference
B - A comes with its 95 % confidence interval over seeds: Student's t on the per-seed
differences when both settings ran the same seeds (the study's design pairs them: one seed gives
every variant the same initialisation of shared parts and the same batches), Welch's t
otherwise. The verdict follows the interval alone:

- a gain claim is reproduced when the interval lies above 0, contradicted when it lies below 0,
  inconclusive otherwise (a single seed has no interval and is always inconclusive);
- an "adds little" claim is reproduced when the interval lies inside +-EQUIVALENCE_MARGIN,
  contradicted when it lies wholly outside it, inconclusive otherwise;
- a number the paper measured on another data set or another number of view classes is not
  comparable.

The `holm` column says whether a reproduced or contradicted verdict still stands when the
family of tested claims (those with an interval) is corrected with Holm's step-down at ALPHA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from vscr_core.paper.results import read_table, table_path

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_COMPARABLE = (
    "reproduced", "contradicted", "inconclusive", "not comparable")
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_COMPARABLE)
GAIN, EQUIVALENT = "gain", "equivalent"
# Fixed before the converged study ran: an "adds little" claim holds when the whole 95 %
# interval of the difference lies within one point (rank-1, or accuracy for Fig. 6).
EQUIVALENCE_MARGIN = 1.0
ALPHA = 0.05
CONFIDENCE = 0.95
COLUMNS = ("claim", "source", "reported", "measured", "ci_low", "ci_high", "margin", "n_seeds",
           "verdict", "holm")


@dataclass(frozen=True)
class Claim:
    text: str  # the claim, in this project's words
    source: str  # the paper's table or figure
    kind: str = GAIN  # GAIN: B - A > 0 is the claim; EQUIVALENT: |B - A| is small


@dataclass(frozen=True)
class Interval:
    """The mean difference B - A and its two-sided CONFIDENCE interval (NaN without one)."""

    mean: float
    low: float
    high: float
    se: float
    df: float
    n_seeds: int  # pairs when paired, else the smaller group
    paired: bool


def difference_interval(a: pd.Series, b: pd.Series, paired: bool = True) -> Interval:
    """B - A from per-seed values (Series indexed by seed). Paired (t on the differences, n - 1
    degrees of freedom) when `paired` and both ran the same seeds; otherwise Welch's t with the
    Welch-Satterthwaite degrees of freedom. Fewer than two seeds on a side: no interval."""
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    mean = float(b.mean() - a.mean())
    if paired and set(a.index) == set(b.index):
        d = (b - a.reindex(b.index)).to_numpy()
        n = len(d)
        se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        df = float(n - 1)
    else:
        n = min(len(a), len(b))
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = float(math.sqrt(va + vb)) if n > 1 else math.nan
        df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))) \
            if n > 1 and va + vb > 0 else math.nan
        paired = False
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se if n > 1 else math.nan
    if n > 1 and se == 0:  # identical differences: a degenerate but exact interval
        half = 0.0
    return Interval(mean, mean - half, mean + half, se, df, n, paired)


def verdict(low: float, high: float, kind: str = GAIN, margin: float | None = None) -> str:
    """The verdict the interval [low, high] of B - A supports (module docstring)."""
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    if kind == GAIN:
        return REPRODUCED if low > 0 else CONTRADICTED if high < 0 else INCONCLUSIVE
    if kind == EQUIVALENT:
        if margin is None or margin <= 0:
            raise ValueError(f"an equivalence claim needs a margin > 0, got {margin!r}")
        if -margin < low and high < margin:
            return REPRODUCED
        return CONTRADICTED if low > margin or high < -margin else INCONCLUSIVE
    raise ValueError(f"claim kind {kind!r}: expected {GAIN!r} or {EQUIVALENT!r}")


def p_value(iv: Interval, kind: str = GAIN, margin: float | None = None) -> float:
    """The two-sided p-value that matches the verdict's interval (p < 1 - CONFIDENCE exactly when
    the interval excludes the hypothesis): for a gain claim, of B - A = 0; for an equivalence
    claim, of its current verdict's null (two one-sided tests for "inside the margin", the
    nearer margin for "outside"), the smaller of the two while inconclusive."""
    if math.isnan(iv.se) or math.isnan(iv.df) or iv.se == 0:
        return math.nan
    if kind == GAIN:
        return float(2 * stats.t.sf(abs(iv.mean) / iv.se, iv.df))
    inside = 2 * max(stats.t.sf((iv.mean + margin) / iv.se, iv.df),
                     stats.t.sf((margin - iv.mean) / iv.se, iv.df))
    outside = 2 * stats.t.sf((abs(iv.mean) - margin) / iv.se, iv.df)
    return float(min(1.0, inside, outside))


def holm(pvalues, alpha: float = ALPHA) -> np.ndarray:
    """Holm's step-down: True where the hypothesis is rejected at family-wise level alpha.
    NaN p-values (claims without an interval) are not part of the family."""
    p = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    out = np.zeros(len(p), dtype=bool)
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        if p[i] > alpha / (len(tested) - rank):
            break
        out[i] = True
    return out


def claim_row(claim: Claim, iv: Interval, reported: float | None) -> dict:
    """One row of claims.csv, plus the p-value Holm's correction needs (dropped on output)."""
    margin = EQUIVALENCE_MARGIN if claim.kind == EQUIVALENT else None
    return {"claim": claim.text, "source": claim.source,
            "reported": np.nan if reported is None else round(reported, 2),
            "measured": round(iv.mean, 2), "ci_low": round(iv.low, 2),
            "ci_high": round(iv.high, 2), "margin": np.nan if margin is None else margin,
            "n_seeds": iv.n_seeds, "verdict": verdict(iv.low, iv.high, claim.kind, margin),
            "p": p_value(iv, claim.kind, margin)}


def not_comparable_row(claim: Claim, reported: float, measured: Interval) -> dict:
    return {**claim_row(claim, measured, reported), "margin": np.nan, "verdict": NOT_COMPARABLE,
            "p": np.nan}


def per_seed(runs: pd.DataFrame, variant: str, metric: str = "rank1") -> pd.Series:
    """A variant's metric indexed by seed, from a table with one row per run."""
    return runs[runs["variant"] == variant].set_index("seed")[metric]


# (per-run table, A, B, claim), in rank-1 points. Table 2's rows come from table2_runs (notebook
# 02), Tables 3 and 4's from table4_runs (notebook 03).
TABLE_CLAIMS = (
    ("table2_runs", "t2_d", "t2_e",
     Claim("MSCL gives a better f than fusing two branches", "Table 2 (e) vs (d)")),
    ("table2_runs", "t2_f", "multi_scale",
     Claim("MSCL beats fusing three branches, with a third of the width", "Table 2 (g) vs (f)")),
    ("table2_runs", "t2_c", "t2_e",
     Claim("separate res5 weights per branch beat shared ones", "Table 2 (e) vs (c)")),
    ("table2_runs", "t2_e", "multi_scale",
     Claim("a third branch (d = 3) helps", "Table 2 (g) vs (e)")),
    ("table2_runs", "multi_scale", "t2_h",
     Claim("a fourth branch adds little", "Table 2 (h) vs (g)", EQUIVALENT)),
    ("table4_runs", "baseline", "view3",
     Claim("a 3-view adversary beats the baseline", "Table 3")),
    ("table4_runs", "view3", "view_adversary", Claim("4 view classes beat 3", "Table 3")),
    ("table4_runs", "baseline", "view_adversary",
     Claim("the view adversary beats the baseline", "Table 4 (b) vs (a)")),
    ("table4_runs", "baseline", "multi_scale",
     Claim("multi-scale training with MSCL beats the baseline", "Table 4 (c) vs (a)")),
    ("table4_runs", "multi_scale", "vscr",
     Claim("adding the view adversary to multi-scale helps (VSCR)", "Table 4 (d) vs (c)")),
    ("table4_runs", "baseline", "vscr", Claim("VSCR beats the baseline", "Table 4 (d) vs (a)")),
)
# The summary tables whose reported columns give the paper's difference for each per-run table.
_REPORTED_IN = {"table2_runs": ("table2_branch_ablation",),
                "table4_runs": ("table3_view_adversary", "table4_variants")}


def _reported_diff(summary: pd.DataFrame, a: str, b: str, metric: str) -> float | None:
    t = summary.set_index("variant")
    if a not in t.index or b not in t.index:
        return None
    diff = t.loc[b, f"{metric}_reported"] - t.loc[a, f"{metric}_reported"]
    return None if pd.isna(diff) else float(diff)


def table_claims(out_dir=None, metric: str = "rank1", leave_out=frozenset()) -> list[dict]:
    """Rows for the ablation claims of Tables 2-4 whose variants were run under out_dir;
    leave_out: (variant, seed) runs to drop, named in each row's left_out (`_paired_without`)."""
    rows, runs, summaries = [], {}, {}
    for name, a, b, claim in TABLE_CLAIMS:
        if name not in runs:
            runs[name] = read_table(name, out_dir)[0]
            summaries[name] = pd.concat([read_table(t, out_dir)[0] for t in _REPORTED_IN[name]]
                                        ).drop_duplicates("variant")
        r = runs[name]
        if not {a, b} <= set(r["variant"]):
            continue
        sa, sb, dropped = _paired_without(per_seed(r, a, metric), per_seed(r, b, metric), a, b,
                                         leave_out)
        rows.append({**claim_row(claim, difference_interval(sa, sb),
                                 _reported_diff(summaries[name], a, b, metric)),
                     "left_out": dropped})
    return rows


def _paired_without(sa: pd.Series, sb: pd.Series, a: str, b: str, leave_out
                   ) -> tuple[pd.Series, pd.Series, str]:
    """Variant a's and b's per-seed values without the seeds where either run is in leave_out
    ((variant, seed) pairs), so that the rest stay paired, and the runs dropped ("vscr s2, ...");
    unchanged when leave_out is empty."""
    if not leave_out:
        return sa, sb, ""
    dropped = sorted((v, s) for v, series in ((a, sa), (b, sb)) for s in series.index
                     if (v, s) in leave_out)
    seeds = [s for s in sa.index.intersection(sb.index) if s not in {s for _, s in dropped}]
    return sa.loc[seeds], sb.loc[seeds], ", ".join(f"{v} s{s}" for v, s in dropped)


# The resolving power aimed for (issue 10): each Table 4 difference within +-1.5 rank-1 points.
TARGET_HALF_WIDTH = 1.5
RESOLUTION_COLUMNS = ("claim", "source", "n_seeds", "sd_differences", "half_width",
                      "target_half_width", "seeds_for_target")


def seeds_for_half_width(sd: float, target: float = TARGET_HALF_WIDTH, most: int = 1000
                         ) -> int | None:
    """The fewest paired seeds n (at least 2) whose 95 % interval, t(n - 1) sd / sqrt(n), is no
    wider than +-target, if the differences keep the spread `sd` seen so far; None where sd is
    unknown (fewer than two seeds) or more than `most` seeds would be needed."""
    if not math.isfinite(sd):
        return None
    for n in range(2, most + 1):
        if stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n) <= target:
            return n
    return None


def table4_claims() -> list[tuple[str, str, Claim]]:
    """(A, B, claim) of Table 4's four paired claims, the ones the study's seeds are sized for."""
    return [(a, b, claim) for name, a, b, claim in TABLE_CLAIMS
            if name == "table4_runs" and claim.source.startswith("Table 4")]


def resolution_row(claim: Claim, iv: Interval) -> dict:
    """One row of RESOLUTION_COLUMNS: the spread of the paired differences behind `iv`, the half
    width reached and the seeds that would reach TARGET_HALF_WIDTH at that spread."""
    sd = iv.se * math.sqrt(iv.n_seeds) if iv.n_seeds > 1 else math.nan
    return {"claim": claim.text, "source": claim.source, "n_seeds": iv.n_seeds,
            "sd_differences": round(sd, 2), "half_width": round(iv.high - iv.mean, 2),
            "target_half_width": TARGET_HALF_WIDTH, "seeds_for_target": seeds_for_half_width(sd)}


def resolving_power(out_dir=None, metric: str = "rank1") -> pd.DataFrame:
    """Table 4's paired claims: how many seeds ran, the spread of their differences, the half
    width of the 95 % interval reached and the seeds that would reach TARGET_HALF_WIDTH."""
    runs = read_table("table4_runs", out_dir)[0]
    rows = [resolution_row(claim, difference_interval(per_seed(runs, a, metric),
                                                      per_seed(runs, b, metric)))
            for a, b, claim in table4_claims() if {a, b} <= set(runs["variant"])]
    return pd.DataFrame(rows, columns=list(RESOLUTION_COLUMNS)).astype(
        {"seeds_for_target": "Int64"})


def resolution_statement(power: pd.DataFrame) -> str:
    """The resolving power in words, from the table."""
    if power.empty:
        return "No Table 4 claim has both of its variants measured yet."
    lines = [f"Table 4's intervals against the target of +-{TARGET_HALF_WIDTH:g} rank-1 points:"]
    for r in power.itertuples():
        if pd.isna(r.half_width):
            lines.append(f"  {r.claim}: {r.n_seeds} seed(s), no interval yet")
            continue
        need = ("more than 1000 seeds" if pd.isna(r.seeds_for_target)
                else f"{r.seeds_for_target} seeds")
        lines.append(f"  {r.claim}: +-{r.half_width:.2f} from {r.n_seeds} seeds (differences "
                     f"spread {r.sd_differences:.2f}); at that spread {need} reach the target")
    return "\n".join(lines)


def test_split_claims(out_dir=None, metric: str = "rank1") -> list[dict]:
    """Table 5 (VSCR beats the baseline on the test split, notebook 04's one seed) and Fig. 8
    (fig8_claims). Where Table 4 was itself measured on the test split (the cpu study), Table 5's
    claim is Table 4 (d) vs (a) over all of Table 4's seeds, seed 0's models among them, so it
    gets no row of its own: one seed would only repeat it, inconclusive."""
    t5, _ = read_table("table5_uav_test", out_dir)
    measured = t5[t5["source"] == "measured"].assign(seed=0)  # notebook 04: one model each
    table4_split = read_table("table4_runs", out_dir)[1].get("split")
    rows = []
    if table4_split != "test" and {"baseline", "vscr"} <= set(measured["variant"]):
        iv = difference_interval(per_seed(measured, "baseline", metric),
                                 per_seed(measured, "vscr", metric))
        rows.append(claim_row(Claim("VSCR beats the baseline on the test split", "Table 5"),
                              iv, None))
    return rows + fig8_claims(out_dir, metric)


def fig8_claims(out_dir=None, metric: str = "rank1", leave_out=frozenset()) -> list[dict]:
    """Fig. 8: VSCR's rank-1 falls more slowly than the baseline's as distractors join the
    gallery, over notebook 05's seeds; leave_out as in table_claims."""
    f8, _ = read_table("fig8_distractors", out_dir)
    change = distractor_change(f8, metric)
    if not {"baseline", "vscr"} <= set(change["variant"]):
        return []
    sa, sb, dropped = _paired_without(per_seed(change, "baseline", "change"),
                                     per_seed(change, "vscr", "change"), "baseline", "vscr",
                                     leave_out)
    return [{**claim_row(fig8_claim(int(f8["distractors"].max())), difference_interval(sa, sb),
                         None), "left_out": dropped}]


def distractor_change(f8: pd.DataFrame, metric: str = "rank1") -> pd.DataFrame:
    """Per variant and seed of Fig. 8's table (variant, seed, distractors, metric): `metric` with
    every distractor added minus without it, in points (a fall is negative). VSCR's change minus
    the baseline's is the Fig. 8 claim's difference: above 0 when VSCR falls more slowly."""
    rows = [{"variant": variant, "seed": seed,
             "change": float(g[metric].iloc[-1] - g[metric].iloc[0])}
            for (variant, seed), g in f8.sort_values("distractors").groupby(["variant", "seed"])]
    return pd.DataFrame(rows, columns=["variant", "seed", "change"])


def fig8_claim(most_distractors: int) -> Claim:
    return Claim(f"VSCR's rank-1 falls more slowly than the baseline's as distractors are added "
                 f"(0 to {most_distractors:,})", "Fig. 8")


def viewpoint_claims(out_dir=None) -> list[dict]:
    """Fig. 6: a quarter of the labels is nearly as good as all of them (accuracy points,
    Welch: each fraction draws its own labelled subset), and the paper's one absolute number,
    which was measured on VeRi-776 with 3 view classes."""
    runs, meta = read_table("viewpoint_fig6", out_dir)
    runs = runs.assign(accuracy=100 * runs["accuracy"])
    summary, _ = read_table("viewpoint_fig6_summary", out_dir)
    lo, hi = runs["fraction"].min(), runs["fraction"].max()
    at = {f: runs[runs["fraction"] == f].set_index("seed")["accuracy"] for f in (lo, hi)}
    iv = difference_interval(at[hi], at[lo], paired=False)
    rows = [claim_row(Claim(f"{100 * lo:.0f} % of the view labels is nearly as good as "
                            f"{100 * hi:.0f} %", "Fig. 6", EQUIVALENT), iv, None)]
    paper = summary["accuracy_reported"].dropna()
    if len(paper):
        zero = pd.Series(0.0, index=at[lo].index)
        level = difference_interval(zero, at[lo])  # the mean accuracy and its interval
        claim = Claim(f"the view classifier is accurate with {100 * lo:.0f} % of the labels",
                      "Fig. 6 (VeRi-776, 3 views)", EQUIVALENT)
        same_setting = meta.get("dataset") == "veri776" and runs["num_views"].iloc[0] == 3
        reported_accuracy = float(paper.iloc[0])
        if same_setting:  # within the margin of the paper's number
            shift = pd.Series(reported_accuracy, index=at[lo].index)
            rows.append(claim_row(claim, difference_interval(shift, at[lo]), reported_accuracy))
        else:
            rows.append(not_comparable_row(claim, reported_accuracy, level))
    return rows


def claims_table(out_dir=None) -> pd.DataFrame:
    """Every claim of the paper this project checks, with its interval and verdict, from the
    tables under out_dir (notebooks 01-05 must have run), and the Holm column."""
    rows = pd.DataFrame(table_claims(out_dir) + test_split_claims(out_dir)
                        + viewpoint_claims(out_dir))
    kept = holm(rows["p"].to_numpy())
    decided = rows["verdict"].isin([REPRODUCED, CONTRADICTED])
    rows["holm"] = np.where(decided, np.where(kept, "yes", "no"), "")
    return rows[list(COLUMNS)]


# The secondary reading, fixed on 2026-12-06 after one run (VSCR of seed 2) failed the
# convergence rule and before any run of Table 4's seeds 3 and 4 had finished: the claims that
# pair the study's runs by seed, over only the runs that met the rule. claims.csv stays the
# primary reading, over every seed the design fixed.
CONVERGED_COLUMNS = ("claim", "source", "reported", "measured", "ci_low", "ci_high", "margin",
                     "n_seeds", "verdict", "left_out")


def unconverged_runs(out_dir=None) -> set[tuple[str, int]] | None:
    """(variant, seed) of the runs training_summary.csv (python -m vscr_core.paper.study) marks
    as not converged; None where out_dir has no such table (the quick and smoke profiles' runs
    are not checked against the rule)."""
    if not table_path("training_summary", out_dir).is_file():
        return None
    summary = read_table("training_summary", out_dir)[0]
    failed = summary[~summary["converged"].astype(bool)]
    return {(str(v), int(s)) for v, s in zip(failed["variant"], failed["seed"])}


def converged_reading(out_dir=None, metric: str = "rank1") -> pd.DataFrame | None:
    """The secondary reading (CONVERGED_COLUMNS): the claims of Tables 2-4 and Fig. 8 without
    the runs that failed the convergence rule, each over the seeds both of its runs kept;
    left_out names the runs dropped from that claim. None without a training summary."""
    leave_out = unconverged_runs(out_dir)
    if leave_out is None:
        return None
    rows = pd.DataFrame(table_claims(out_dir, metric, leave_out)
                        + fig8_claims(out_dir, metric, leave_out))
    return rows[list(CONVERGED_COLUMNS)]


def tested(claims: pd.DataFrame) -> int:
    """How many claims were tested: those with an interval, i.e. in Holm's family."""
    return int((claims["ci_low"].notna() & (claims["verdict"] != NOT_COMPARABLE)).sum())


def claims_statement(claims: pd.DataFrame) -> str:
    """The claims table in words: how many were tested and what each verdict counts."""
    lines = [f"{len(claims)} claims; {tested(claims)} have a 95 % interval and were tested "
             f"(Holm's correction at {ALPHA:.0%} over those)."]
    for v in VERDICTS:
        group = claims[claims["verdict"] == v]
        if len(group):
            holm_note = (f" ({(group['holm'] == 'yes').sum()} survive Holm)"
                         if v in (REPRODUCED, CONTRADICTED) else "")
            lines.append(f"{v}: {len(group)}{holm_note}: " + "; ".join(group["claim"]))
    return "\n".join(lines)


def verdict_label(row: pd.Series) -> str:
    """The verdict as the claims figure writes it: with its seeds and, where Holm's correction
    was applied, whether the verdict survives it (the verdict itself follows the interval)."""
    if row["verdict"] == NOT_COMPARABLE:
        return f"not comparable: measured {row['measured']:.2f}, reported {row['reported']:.2f}"
    after_holm = {"yes": "; survives Holm", "no": "; not after Holm"}.get(row["holm"], "")
    return f"{row['verdict']} (n = {row['n_seeds']}){after_holm}"


def plot_claims(claims: pd.DataFrame, path) -> Path:
    """One row per claim: the measured difference in the claim's direction with its 95 %
    interval, the equivalence margin as a grey band where the claim is "adds little", and the
    verdict written beside the axes and coded by colour."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    from vscr_core.files import save_figure

    colours = {REPRODUCED: "#2a9d4b", CONTRADICTED: "#c8382c", INCONCLUSIVE: "#888888",
               NOT_COMPARABLE: "#33518a"}
    comparable = claims["verdict"] != NOT_COMPARABLE
    y = np.arange(len(claims))[::-1]
    fig = Figure(figsize=(13, 0.55 * len(claims) + 1.8), layout="constrained")
    ax = fig.subplots()
    side = blended_transform_factory(ax.transAxes, ax.transData)
    spans = claims.loc[comparable, ["measured", "ci_low", "ci_high", "margin"]].abs()
    lim = 1.1 * max(np.nanmax(spans.to_numpy(dtype=float), initial=0), 1.0)
    for yi, (_, r) in zip(y, claims.iterrows()):
        colour = colours[r["verdict"]]
        if r["verdict"] != NOT_COMPARABLE:
            if not pd.isna(r["margin"]):
                ax.add_patch(Rectangle((-r["margin"], yi - 0.4), 2 * r["margin"], 0.8,
                                       color="#e6e6e6", zorder=0))
            ax.errorbar(r["measured"], yi, xerr=None if pd.isna(r["ci_low"]) else
                        [[r["measured"] - r["ci_low"]], [r["ci_high"] - r["measured"]]],
                        fmt="o", color=colour, capsize=4)
        ax.text(0.73, yi, textwrap.fill(verdict_label(r), 34), transform=side, va="center",
                fontsize=8, color=colour)
    ax.set_xlim(-lim, 2.8 * lim)  # the right part holds the verdicts
    ax.axvline(1.15 * lim, color="#cccccc", lw=0.8)
    ax.set_xticks([t for t in ax.get_xticks() if -lim <= t <= lim])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [textwrap.fill(f"{c} ({s})", 55) for c, s in
                      zip(claims["claim"], claims["source"])], fontsize=8)
    ax.set_xlabel("measured difference in the claim's direction (points) with its 95 % interval "
                  f"over seeds; grey band: the equivalence margin (±{EQUIVALENCE_MARGIN:g})")
    ax.set_title(f"The paper's claims on this project's data ({tested(claims)} tested)")
    return save_figure(fig, path)


__all__ = [
    "ALPHA", "COLUMNS", "CONTRADICTED", "CONVERGED_COLUMNS", "Claim", "EQUIVALENCE_MARGIN",
    "EQUIVALENT", "GAIN", "INCONCLUSIVE", "Interval", "NOT_COMPARABLE", "REPRODUCED",
    "TABLE_CLAIMS", "TARGET_HALF_WIDTH", "VERDICTS", "claim_row",
    "claims_statement", "claims_table", "converged_reading", "difference_interval",
    "distractor_change", "fig8_claim", "fig8_claims", "holm", "p_value",
    "plot_claims", "resolution_row", "resolution_statement", "resolving_power",
    "seeds_for_half_width", "table4_claims", "table_claims", "test_split_claims", "tested",
    "unconverged_runs", "verdict", "verdict_label", "viewpoint_claims"
]
