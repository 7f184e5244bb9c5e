"""Fig. 6 (Sect. 5.3.1): view accuracy against the share of labelled training images, and the
confusion matrix beside it. `fraction_curve` trains one classifier (viewpoint.py) per seed and
share on nested subsets and scores all of them on one held-out set of identities; `run_fig6` is
the path of the committed figure on the synthetic data; `fig6_runs` is notebook 01's, which also
takes a real data set with view labels and reuses finished runs whose provenance matches."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vscr_core.config import FIG6_CLASSIFIER, FIG6_FRACTIONS, ViewpointConfig
from vscr_core.data import synthetic_dataset
from vscr_core.data.types import VIEW_NAMES, ReIDDataset
from vscr_core.files import REPO_ROOT, atomic_write_bytes, git_commit, save_figure
from vscr_core.paper import reported
from vscr_core.paper.datasets import load_parts
from vscr_core.paper.notebook import NotebookRun
from vscr_core.paper.results import FIGURES_DIR, read_table, table_path
from vscr_core.runtime import resolve_device
from vscr_core.viewpoint import (
    evaluate_viewpoint,
    split_by_identity,
    train_viewpoint_classifier,
    view_samples,
)


def fraction_curve(dataset: ReIDDataset, fractions=FIG6_FRACTIONS, seeds=(0, 1, 2),
                   cfg: ViewpointConfig | None = None, test_fraction: float = 0.2,
                   split_seed: int = 0, progress: bool = True):
    """One row per (seed, fraction): accuracy on ONE held-out set of identities (the same for
    every run) after training on `fraction` of the remaining labelled images. For each seed the
    subsets are nested (the first 25 % of one shuffled order, then the first 50 %, ...).
    Columns: num_views, fraction, seed, train_images, test_images, accuracy, confusion (JSON),
    wall_s."""
    cfg = cfg or ViewpointConfig()
    if dataset.num_views == 0:
        raise ValueError(f"{dataset.name} has no view labels; Fig. 6 needs a labelled data set")
    if dataset.num_views < cfg.num_views:
        raise ValueError(f"{dataset.name} labels {dataset.num_views} views; cannot train a "
                         f"{cfg.num_views}-view classifier on it")
    labelled = view_samples(dataset.train, dataset.num_views, cfg.num_views)
    pool, test = split_by_identity(labelled, test_fraction, split_seed)
    rows = []
    runs = tqdm([(s, f) for s in seeds for f in fractions], desc="Fig. 6", disable=not progress)
    for seed, fraction in runs:
        order = np.random.default_rng(seed).permutation(len(pool))
        n = max(1, round(fraction * len(pool)))
        subset = [pool[i] for i in sorted(order[:n])]
        t0 = time.perf_counter()
        fit = train_viewpoint_classifier(subset, replace(cfg, seed=seed), progress=progress)
        result = evaluate_viewpoint(fit.model, test)
        rows.append({"num_views": cfg.num_views, "fraction": fraction, "seed": seed,
                     "train_images": n, "test_images": len(test),
                     "accuracy": result["accuracy"],
                     "confusion": json.dumps(result["confusion"].tolist()),
                     "wall_s": round(time.perf_counter() - t0, 1)})
        runs.set_postfix(acc=f"{result['accuracy']:.3f}")
    return pd.DataFrame(rows)


def plot_fraction_curve(df, out_png, reported: float | None = reported.FIG6_VERI776_25) -> Path:
    """Accuracy (mean ± std over seeds) against % of training images; the paper's VeRi-776
    figure at 25 % as a reference line."""
    from matplotlib.figure import Figure

    stats = df.groupby("fraction")["accuracy"].agg(["mean", "std"]).fillna(0.0) * 100
    x = stats.index.to_numpy() * 100
    num_views = int(df["num_views"].iloc[0])
    fig = Figure(figsize=(5.5, 4), dpi=150, layout="constrained")
    ax = fig.subplots()
    ax.errorbar(x, stats["mean"], yerr=stats["std"], marker="o", capsize=4, color="tab:blue",
                label=f"measured (synthetic, {num_views} views; mean ± std, "
                      f"{df['seed'].nunique()} seeds)")
    if reported is not None:
        ax.axhline(reported, color="tab:red", ls="--", lw=1.2)
        ax.plot([25], [reported], marker="*", ms=12, color="tab:red", ls="none",
                label=f"reported (VeRi-776, 3 views): {reported:.2f} % at 25 %")
    chance = 100 / num_views
    ax.axhline(chance, color="grey", ls=":", lw=1, label=f"chance ({chance:.0f} %)")
    ax.set(xlabel="labelled training images used (%)", ylabel="view accuracy on held-out ids (%)",
           xticks=x, xlim=(x.min() - 8, x.max() + 8), ylim=(0, 102),
           title="Fig. 6: viewpoint classifier accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, out_png)


def plot_confusion(df, out_png, fraction: float = 0.25) -> Path:
    """Confusion matrix at one fraction, summed over seeds: row-normalised %, with counts."""
    import seaborn as sns
    from matplotlib.figure import Figure

    rows = df[np.isclose(df["fraction"], fraction)]
    if rows.empty:
        raise ValueError(f"no runs at fraction {fraction}; have {sorted(df['fraction'].unique())}")
    counts = sum(np.array(json.loads(c)) for c in rows["confusion"])
    percent = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
    views = VIEW_NAMES[int(rows["num_views"].iloc[0])]
    text = np.array([[f"{p:.1f} %\n({c})" for p, c in zip(pr, cr)]
                     for pr, cr in zip(percent, counts)])
    fig = Figure(figsize=(5, 4.2), dpi=150, layout="constrained")
    ax = fig.subplots()
    sns.heatmap(percent, annot=text, fmt="", cmap="Blues", vmin=0, vmax=100, square=True,
                xticklabels=views, yticklabels=views, cbar_kws={"label": "% of true view"},
                ax=ax, annot_kws={"fontsize": 9})
    ax.set(xlabel="predicted view", ylabel="true view",
           title=f"Viewpoint confusion, {fraction:.0%} of training data\n"
                 f"(synthetic, {rows['seed'].nunique()} seeds summed)")
    return save_figure(fig, out_png)


def run_fig6(preset: str = "quick", synth_seed: int = 0, fractions=FIG6_FRACTIONS,
             seeds=(0, 1, 2), cfg: ViewpointConfig | None = None,
             out_csv=REPO_ROOT / "results" / "viewpoint_fig6.csv",
             figures_dir=REPO_ROOT / "figures", progress: bool = True):
    """Fig. 6 on the synthetic data: the CSV, its provenance JSON and both figures. The default
    config is config.FIG6_CLASSIFIER, the one that made the published results."""
    cfg = cfg or FIG6_CLASSIFIER
    t0 = time.perf_counter()
    ds = synthetic_dataset(preset, seed=synth_seed, progress=progress)
    df = fraction_curve(ds, fractions, seeds, cfg, progress=progress)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_csv, df.to_csv(index=False).encode())
    at25 = df[np.isclose(df["fraction"], 0.25)]["accuracy"] * 100
    provenance = {
        "commit": git_commit(), "command": "vscr viewpoint fig6",
        "data set": ds.name, "synth_preset": preset, "synth_seed": synth_seed,
        "fractions": list(fractions), "seeds": list(seeds), "test_fraction": 0.2,
        "split_seed": 0, "config": asdict(cfg), "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(resolve_device(cfg.device)), "wall_s": round(time.perf_counter() - t0, 1),
        "accuracy_at_25_percent": {"mean": round(float(at25.mean()), 2),
                                   "std": round(float(at25.std()), 2)} if len(at25) else None,
        "reported_veri776_at_25_percent": reported.FIG6_VERI776_25,
    }
    atomic_write_bytes(out_csv.with_suffix(".json"),
                       (json.dumps(provenance, indent=2) + "\n").encode())
    plot_fraction_curve(df, Path(figures_dir) / "fig6_viewpoint.png")
    plot_confusion(df, Path(figures_dir) / "viewpoint_confusion.png",
                   fraction=min(fractions))
    return df


def _cached_fig6(run: NotebookRun, name: str, meta_want: dict) -> pd.DataFrame | None:
    """The Fig. 6 runs already in <out_dir>/results/<name>.csv when its provenance matches
    (data set, fractions, seeds, classifier config): like experiments.run, finished runs are
    reused, not retrained."""
    path = table_path(name, run.out_dir)
    if not (path.is_file() and path.with_suffix(".json").is_file()):
        return None
    df, meta = read_table(name, run.out_dir)
    if any(meta.get(k) != v for k, v in meta_want.items()):
        return None
    print(f"reusing the finished Fig. 6 runs in {path} (commit {meta.get('commit')}, "
          f"{meta.get('wall_s')} s then)")
    return df


def fig6_runs(run: NotebookRun, name: str = "viewpoint_fig6", progress: bool = False):
    """Fig. 6's runs (one row per seed x fraction), written to results/<name>.csv, and both
    plots. On the synthetic default this is run_fig6, the code path of the published
    results; another data set (with view labels) goes through the same fraction_curve."""
    st = run.settings.fig6
    cfg = replace(st.classifier, device=run.device)
    seeds = tuple(run.seeds)
    synth_default = run.dataset == "synth" and run.data_root is None
    want = {"fractions": list(st.fractions), "seeds": list(seeds), "config": asdict(cfg)}
    if synth_default:
        want["data set"] = f"synth-{st.preset}-s0-val"
    df = _cached_fig6(run, name, want)
    if df is None:
        print(f"Fig. 6: training {len(seeds) * len(st.fractions)} classifiers "
              f"({len(seeds)} seeds x shares {list(st.fractions)}, {cfg.steps} steps each)")
    if df is None and synth_default:
        df = run_fig6(st.preset, synth_seed=0, fractions=st.fractions, seeds=seeds, cfg=cfg,
                      out_csv=table_path(name, run.out_dir),
                      figures_dir=run.out_dir / FIGURES_DIR, progress=progress)
        # run_fig6 wrote its provenance; add the notebook's fields (profile, notebook, ...)
        _, meta = read_table(name, run.out_dir)
        run.write_table(df, name, **meta)
    elif df is None:
        ds = load_parts(run.config)
        df = fraction_curve(ds.as_dataset(), st.fractions, seeds, cfg, progress=progress)
        run.write_table(df, name, **{"data set": ds.name, **want})
    for r in df.itertuples():
        print(f"  seed {r.seed}, {100 * r.fraction:.0f} % ({r.train_images} images): "
              f"accuracy {r.accuracy:.4f} in {r.wall_s} s")
    plot_fraction_curve(df, run.figure_path("fig6_viewpoint"))
    plot_confusion(df, run.figure_path("viewpoint_confusion"), fraction=min(st.fractions))
    return df


def fig6_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per fraction: measured accuracy (%, mean and std over seeds), chance, and the paper's
    reported figure where it gives one (VeRi-776, 3 views, 25 %)."""
    g = df.groupby("fraction")
    out = pd.DataFrame({
        "fraction": g["fraction"].first(),
        "train_images": g["train_images"].first(),
        "test_images": g["test_images"].first(),
        "seeds": g["seed"].nunique(),
        "accuracy_measured_mean": (100 * g["accuracy"].mean()).round(2),
        "accuracy_measured_std": (100 * g["accuracy"].std()).round(2),
        "chance": (100 / g["num_views"].first()).round(2),
    }).reset_index(drop=True)
    out["accuracy_reported"] = np.where(np.isclose(out["fraction"], 0.25), reported.FIG6_VERI776_25,
                                        np.nan)
    out["reported_on"] = np.where(np.isclose(out["fraction"], 0.25),
                                  "VeRi-776, 3 views (Sect. 5.3.1)", "")
    return out


def fig6_statement(summary: pd.DataFrame) -> str:
    """The measured curve in words, from the summary table."""
    last = summary.iloc[-1]
    lines = [f"Measured view accuracy on held-out identities ({int(last['seeds'])} seed(s), "
             f"{int(last['test_images'])} test images, chance {last['chance']} %):"]
    for r in summary.itertuples():
        spread = "" if pd.isna(r.accuracy_measured_std) else f" ± {r.accuracy_measured_std}"
        lines.append(f"  {100 * r.fraction:.0f} % of the labels ({r.train_images} images): "
                     f"{r.accuracy_measured_mean}{spread} %")
    gain = last["accuracy_measured_mean"] - summary["accuracy_measured_mean"].iloc[0]
    lines.append(f"Going from the smallest to the largest share changes accuracy by {gain:+.2f} "
                 "points.")
    paper = summary["accuracy_reported"].dropna()
    if len(paper):
        lines.append(f"The paper reports {paper.iloc[0]} % at 25 % on VeRi-776 (3 views, real "
                     "images), a different data set: the comparison is of the curve's shape.")
    return "\n".join(lines)
