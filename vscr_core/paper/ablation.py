"""Tables 2-4: the ablations, measured on the validation split beside the paper's figures.

Notebooks 02 (Table 2) and 03 (Tables 3 and 4) call `ablation_runs` to train (or reuse) every
variant and seed, then build their tables from the per-run metrics. Chance is the expected metric
of a random ranking under the same protocol (`experiments.measured_chance`), so every table shows
how far above it the trained models are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vscr_core.data.registry import dataset_spec
from vscr_core.model import feature_dim
from vscr_core.paper import claims, reported
from vscr_core.paper.variants import TABLE2, TABLE4, VARIANTS, table3_variants

METRICS = ("rank1", "rank5", "rank10", "mAP")

_REPORTED_NAMES = {"uav_veid": "UAV-VeID val", "veri776": "VeRi-776", "vehicleid": "VehicleID"}


def ablation_runs(run, names, seeds=None, protocol: dict | None = None) -> pd.DataFrame:
    """Train (or reuse) each variant in `names` for each seed and return one row per run with
    its metrics in % (validation split unless `protocol` says otherwise)."""
    seeds = tuple(run.seeds if seeds is None else seeds)
    rows = []
    for name in names:
        for seed in seeds:
            m = run.metrics(name, seed, protocol=protocol, progress=False)
            model = run.variant(name, seed).model
            rows.append({"variant": name, "label": VARIANTS[name].label, "seed": seed,
                         # unrounded: the claims' intervals are computed from these
                         **{k: round(100 * m[k], 6) for k in METRICS},
                         "feature_dim": feature_dim(model.embed_dim, model.dilations, model.fuse),
                         "run": m["run"], "train_eval_s": m["seconds"]})
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame, names, dataset: str, chance: dict,
              metrics=METRICS, reported: dict | None = None) -> pd.DataFrame:
    """One row per variant: measured mean and std over seeds, the paper's reported figures for
    the data set the measured one stands for, and chance, all in %."""
    reported_key = dataset_spec(dataset).reported_as  # the synthetic set stands for UAV-VeID
    rows = []
    for name in names:
        r = runs[runs["variant"] == name]
        row = {"variant": name, "label": VARIANTS[name].label, "seeds": len(r),
               "feature_dim": int(r["feature_dim"].iloc[0])}
        for k in metrics:
            row[f"{k}_measured"] = round(r[k].mean(), 2)
            row[f"{k}_measured_std"] = round(r[k].std(), 2) if len(r) > 1 else np.nan
        rep = (reported or {}).get(name, {}).get(reported_key)
        for k, v in zip(metrics, rep or [np.nan] * len(metrics)):
            row[f"{k}_reported"] = v
        for k in metrics:
            row[f"{k}_chance"] = round(100 * chance[k], 2)
        rows.append(row)
    out = pd.DataFrame(rows)
    out["reported_on"] = _REPORTED_NAMES.get(reported_key, "")
    return out


def table2(runs: pd.DataFrame, dataset: str, chance: dict) -> pd.DataFrame:
    return summarise(runs, TABLE2, dataset, chance, ("rank1", "mAP"), reported.TABLE2)


def table3(runs: pd.DataFrame, dataset: str, chance: dict, num_views: int) -> pd.DataFrame:
    """Table 3 on a data set with `num_views` view classes (variants.table3_variants)."""
    return summarise(runs, table3_variants(num_views), dataset, chance, METRICS, reported.TABLE4)


def table4(runs: pd.DataFrame, dataset: str, chance: dict) -> pd.DataFrame:
    return summarise(runs, TABLE4, dataset, chance, METRICS, reported.TABLE4)


def plot_ablation(table: pd.DataFrame, path: Path, title: str, metrics=("rank1", "mAP")) -> Path:
    """Grouped bars per metric (two panels per row): measured (mean, std over seeds as error
    bars) beside reported, per variant, with chance drawn as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from vscr_core.files import save_figure

    cols = min(2, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = Figure(figsize=(6.5 * cols, 4.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    x = np.arange(len(table))
    ticks = [VARIANTS[v].short for v in table["variant"]]
    for ax, k in zip(axes, metrics):
        err = table[f"{k}_measured_std"].fillna(0).to_numpy()
        ax.bar(x - 0.2, table[f"{k}_measured"], 0.4, yerr=err, capsize=3, color="#3a7dc9",
               label=f"measured (mean ± std over {int(table['seeds'].max())} seed(s))")
        ax.bar(x + 0.2, table[f"{k}_reported"].fillna(0), 0.4, color="#bbbbbb",
               label=f"reported ({table['reported_on'].iloc[0]})")
        ax.axhline(table[f"{k}_chance"].iloc[0], ls=":", color="k", label="chance (measured set)")
        ax.set_xticks(x, ticks, rotation=30, ha="right")
        ax.set(ylabel=f"{k} (%)", ylim=(0, 100), title=k)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    fig.suptitle(title)
    return save_figure(fig, path)


def _score(row, k: str) -> str:
    std = row.get(f"{k}_measured_std")
    spread = "" if std is None or pd.isna(std) else f" ± {std:.2f}"
    return f"{row[f'{k}_measured']:.2f}{spread}"


def _compare(runs: pd.DataFrame, a: str, b: str, k: str = "rank1") -> str:
    """B - A in points of `k` with its 95 % interval over the seeds, paired where both variants
    ran the same ones (claims.difference_interval). No verdict: notebook 09 reads those."""
    iv = claims.difference_interval(claims.per_seed(runs, a, k), claims.per_seed(runs, b, k))
    if np.isnan(iv.low):
        return f"{iv.mean:+.2f} points {k} (one seed: no interval)"
    return (f"{iv.mean:+.2f} points {k}, 95 % interval [{iv.low:+.2f}, {iv.high:+.2f}] over "
            f"{iv.n_seeds} {'paired ' if iv.paired else ''}seeds")


def _lines(table: pd.DataFrame, metrics, split: str) -> list[str]:
    head = table.iloc[0]
    chance = ", ".join(f"{k} {head[f'{k}_chance']:.2f} %" for k in metrics)
    out = [f"Measured on the {split} split ({int(table['seeds'].max())} seed(s) per row; "
           f"chance: {chance}):"]
    for _, r in table.iterrows():
        out.append(f"  {r['label']}: " + ", ".join(f"{k} {_score(r, k)}" for k in metrics))
    lowest = table[f"{metrics[0]}_measured"].min()
    out.append(f"The weakest row is {lowest / max(head[f'{metrics[0]}_chance'], 1e-9):.0f}x "
               f"chance at {metrics[0]}.")
    return out


def table2_statement(table: pd.DataFrame, runs: pd.DataFrame, split: str = "val") -> str:
    """Table 2 in words: each row (table2), then the paper's comparisons measured on the runs
    (ablation_runs) beside its reported differences."""
    out = _lines(table, ("rank1", "mAP"), split)
    for a, b, what in (("t2_d", "t2_e", "MSCL instead of fusing (e vs d)"),
                       ("t2_c", "t2_e", "separate instead of shared weights (e vs c)"),
                       ("t2_e", "multi_scale", "a third branch (g vs e)"),
                       ("t2_f", "multi_scale", "MSCL instead of fusing, 3 branches (g vs f)"),
                       ("multi_scale", "t2_h", "a fourth branch (h vs g)"),
                       ("baseline", "multi_scale", "(g) over the baseline (a)")):
        out.append(f"{what}: {_compare(runs, a, b)}; the paper: "
                   f"{_reported_diff(table, a, b)}.")
    return "\n".join(out)


def _reported_diff(table: pd.DataFrame, a: str, b: str, k: str = "rank1") -> str:
    t = table.set_index("variant")
    diff = t.loc[b, f"{k}_reported"] - t.loc[a, f"{k}_reported"]
    if pd.isna(diff):
        return "not reported"
    return f"{diff:+.2f} points {k} ({t.loc[a, 'reported_on']})"


def table3_statement(table: pd.DataFrame, runs: pd.DataFrame, split: str = "val") -> str:
    out = _lines(table, METRICS, split)
    if "view3" in set(table["variant"]):
        out.append(f"3-view adversary over the baseline: {_compare(runs, 'baseline', 'view3')}; "
                   f"the paper: {_reported_diff(table, 'baseline', 'view3')}.")
        out.append(f"4-view over 3-view: {_compare(runs, 'view3', 'view_adversary')}; the "
                   f"paper: {_reported_diff(table, 'view3', 'view_adversary')}.")
    return "\n".join(out)


def table4_statement(table: pd.DataFrame, runs: pd.DataFrame, split: str = "val") -> str:
    out = _lines(table, METRICS, split)
    for a, b, what in (("baseline", "view_adversary", "view adversary over the baseline"),
                       ("baseline", "multi_scale", "multi-scale over the baseline"),
                       ("multi_scale", "vscr", "VSCR over multi-scale alone"),
                       ("baseline", "vscr", "VSCR over the baseline")):
        out.append(f"{what}: {_compare(runs, a, b)}; {_compare(runs, a, b, 'mAP')}; the paper: "
                   f"{_reported_diff(table, a, b)}.")
    return "\n".join(out)
