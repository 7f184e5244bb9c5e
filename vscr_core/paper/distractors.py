"""What notebook 05 (Fig. 8) computes: each model's rank-1 and mAP as distractors join the test
gallery, from one pass over them (evaluate.distractor_curve), kept in the model's run folder.

    run = NotebookRun("05_distractors", ...)
    df = distractors.distractor_table(run)       # per variant, seed and number of distractors
    distractors.plot_distractors(df, run.figure_path("fig8_distractors"))
    print(distractors.fig8_statement(df))

Whether VSCR's rank-1 falls more slowly than the baseline's is a paired interval over seeds
(claims.test_split_claims), not a sentence here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vscr_core.data.registry import dataset_spec
from vscr_core.evaluate import (
    chance_level,
    distractor_curve,
    evaluate_uav_veid,
    protocol_counts,
)
from vscr_core.experiments import features
from vscr_core.files import save_figure
from vscr_core.paper.comparison import (
    LABELS,
    METRICS,
    MODELS,
    kept_result,
    percent,
    uav_test_split,
)


def distractor_counts(available: int, points: int = 6) -> list[int]:
    """`points` counts evenly spread over 0..available (0 and all included, no repeats)."""
    if not isinstance(available, int | np.integer) or available < 0:
        raise ValueError(f"available distractors must be a non-negative int, got {available!r}")
    if not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an int >= 2, got {points!r}")
    return sorted({int(round(x)) for x in np.linspace(0, available, points)})


FIG8_COLUMNS = ["variant", "method", "distractors", "gallery_size", *METRICS, "chance_rank1",
                "chance_mAP", "queries", "seed", "evaluated_on"]


def distractor_curve_name(ds, counts) -> str:
    """The name of a model's kept distractor curve (its run folder's <name>.json): the gallery
    and the counts name it, since the 50K tree shares the 500's ds.name."""
    return f"distractors-{ds.name}-of{len(ds.distractors)}-at{'-'.join(map(str, counts))}"


def distractor_table(run, models=MODELS, counts=None, points: int = 6) -> pd.DataFrame:
    """Fig. 8's table: per variant, seed (every seed of the run: the claim that VSCR's rank-1
    falls more slowly is a paired difference over them) and number of distractors added to the
    test gallery, rank-1/5/10 and mAP (%) and chance, from one pass (evaluate.distractor_curve)
    per model.
    counts None: `points` counts from 0 to every distractor of the data set (on the synthetic
    default, of a tree with run.fig8_distractors of them). Data sets without a distractor set
    give an empty table."""
    if not dataset_spec(run.dataset).distractors:
        return pd.DataFrame(columns=FIG8_COLUMNS)
    ds = uav_test_split(run.config, run.fig8_distractors)
    if not ds.distractors:
        raise ValueError(f"{ds.name} has no distractors (UAV-VeID: the distractors/ folder)")
    counts = distractor_counts(len(ds.distractors), points) if counts is None else list(counts)
    if not counts or min(counts) < 0 or max(counts) > len(ds.distractors):
        raise ValueError(f"counts must lie in 0..{len(ds.distractors)}, got {counts}")
    qp, gp = [s.pid for s in ds.query], [s.pid for s in ds.gallery]
    rows = []
    m, n = protocol_counts(qp, gp)
    for seed, name in ((seed, name) for seed in run.seeds for name in models):
        cfg = run.variant(name, seed)

        def compute(model, cfg=cfg) -> dict:
            q = features(model, ds.query, cfg, progress=False)
            g = features(model, ds.gallery, cfg, progress=False)
            top = max(counts)
            if top:  # tens of thousands of crops: minutes per model on a CPU, so a bar
                d = features(model, ds.distractors[:top], cfg)
                curve = distractor_curve(q, g, qp, gp, d, counts, junk="none")
            else:
                curve = {0: evaluate_uav_veid(q, g, qp, gp)}
            return {str(c): curve[c].as_dict() for c in counts}

        curve = kept_result(run, name, seed, distractor_curve_name(ds, counts), compute)
        for c in counts:
            r, ch = curve[str(c)], chance_level(m, n + c)
            rows.append({"variant": name, "method": LABELS.get(name, name), "distractors": c,
                         "gallery_size": len(gp) + c, **{k: percent(r[k]) for k in METRICS},
                         "chance_rank1": percent(ch["rank1"]), "chance_mAP": percent(ch["mAP"]),
                         "queries": r["num_queries"], "seed": seed,
                         "evaluated_on": ds.name})
    return pd.DataFrame(rows, columns=FIG8_COLUMNS)


_NO_DISTRACTORS = ("Fig. 8 not measured: this data set has no distractor set (the paper draws "
                   "it on UAV-VeID; run the notebook with dataset 'uav_veid' or the synthetic "
                   "default).")


def plot_distractors(df: pd.DataFrame, out_png) -> Path:
    """Fig. 8: rank-1 and mAP against distractors added to the gallery, one line per model,
    chance dotted."""
    import seaborn as sns
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=150, layout="constrained")
    if df.empty:
        fig.text(0.5, 0.5, _NO_DISTRACTORS, ha="center", va="center", wrap=True)
        return save_figure(fig, out_png)
    axes = fig.subplots(1, 2)
    colours = sns.color_palette("tab10", 3)
    for ax, (metric, chance, label) in zip(axes, (("rank1", "chance_rank1", "rank-1"),
                                                  ("mAP", "chance_mAP", "mAP")), strict=True):
        for i, (_, g) in enumerate(df.groupby("variant", sort=False)):
            by_count = g.groupby("distractors")[metric]
            mean, low, high = by_count.mean(), by_count.min(), by_count.max()
            ax.plot(mean.index, mean, marker="o", lw=2, color=colours[i],
                    label=f"measured: {g['method'].iloc[0]}")
            if g["seed"].nunique() > 1:  # the spread of the seeds' curves
                ax.fill_between(mean.index, low, high, color=colours[i], alpha=0.2, lw=0)
        first = df[(df["variant"] == df["variant"].iloc[0]) & (df["seed"] == df["seed"].iloc[0])]
        ax.plot(first["distractors"], first[chance], color="grey", ls=":", lw=1.2,
                label="chance (random ranking)")
        ax.set(xlabel="distractors added to the test gallery", ylabel=f"{label} (%)",
               xticks=sorted(df["distractors"].unique()),
               ylim=(0, 101), title=f"{label} vs distractors")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seeds = sorted(int(x) for x in df["seed"].unique())
    spread = f"mean of seeds {seeds}, band: their range" if len(seeds) > 1 else f"seed {seeds[0]}"
    fig.suptitle(f"Fig. 8: {df['evaluated_on'].iloc[0]}, {df['queries'].iloc[0]} queries, "
                 f"{spread}\n(the paper: UAV-VeID, up to 300K distractors)")
    return save_figure(fig, out_png)


def fig8_statement(df: pd.DataFrame) -> str:
    """How each model's rank-1 and mAP change from no distractors to all (mean over seeds),
    read from the table; whether VSCR's falls more slowly is a claim with an interval
    (claims.test_split_claims, notebook 09), not a sentence here."""
    if df.empty:
        return _NO_DISTRACTORS
    seeds = sorted(int(x) for x in df["seed"].unique())
    lines = [f"Measured on {df['evaluated_on'].iloc[0]} ({df['queries'].iloc[0]} queries, "
             f"{df['gallery_size'].min()} gallery images, seeds {seeds}), distractors added: "
             f"{', '.join(map(str, sorted(df['distractors'].unique())))}:"]
    for _, g in df.groupby("variant", sort=False):
        ends = g[g["distractors"].isin([g["distractors"].min(), g["distractors"].max()])]
        mean = ends.groupby("distractors")[["rank1", "mAP"]].mean()
        a, b = mean.iloc[0], mean.iloc[-1]
        lines.append(f"  {g['method'].iloc[0]}: rank-1 {a['rank1']:.2f} -> {b['rank1']:.2f} % "
                     f"({b['rank1'] - a['rank1']:+.2f} points), mAP {a['mAP']:.2f} -> "
                     f"{b['mAP']:.2f} %")
    lines.append("Whether VSCR's rank-1 falls more slowly than the baseline's, as the paper "
                 "reports on UAV-VeID, is read from the paired interval over seeds in "
                 "results/claims.csv (notebook 09).")
    return "\n".join(lines)


__all__ = ["FIG8_COLUMNS", "distractor_counts", "distractor_curve_name", "distractor_table",
           "fig8_statement", "plot_distractors"]
