"""What notebook 04 (Tables 5-8, Fig. 7) computes: the paper's comparison tables with its reported
numbers beside this project's measured baseline and VSCR, the chance level of each protocol, and
CMC curves; and what notebook 05 (Fig. 8, distractors.py) shares with it: the UAV test split and
the results each model keeps in its run folder.

All metrics in the tables are percentages (0-100), as in the paper. A row's `source` says where
its numbers come from: "reported (paper Table N)" (typed from the paper), "measured" (computed
here, one seed) or "chance" (the expected value of a uniformly random ranking, see
`chance_level`). A measured row that needs a data set the notebook was not given keeps its
metrics empty and says so in `note`; no number is ever filled in by hand.

    run = NotebookRun("04_comparison", ...)
    t5 = comparison.build_table(run, 5)          # -> run.write_table(t5, "table5_uav_test")
    curves = comparison.cmc_curves(run)          # Fig. 7's measured curves
    comparison.plot_cmc(curves, t5, run.figure_path("fig7_cmc"))
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vscr_core.data.registry import DATASETS, dataset_spec
from vscr_core.evaluate import chance_level
from vscr_core.experiments import measured_chance
from vscr_core.files import save_figure
from vscr_core.paper import reported

MODELS = ("baseline", "vscr")  # the variants compared with the paper (variants.VARIANTS)
LABELS = {"baseline": "baseline (this project)", "vscr": "VSCR (this project)"}
METRICS = ("rank1", "rank5", "rank10", "mAP")

VERIWILD_SUBSETS = tuple(reported.VERIWILD_TEST_IDS)  # small, medium, large


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's comparison tables: where its measured rows come from and its
    reported rows as dicts (method, backbone, subset, rank1, rank5, rank10, mAP; None = not
    given)."""

    number: int
    name: str  # results/<name>.csv, the FIGURES registry's name
    paper_dataset: str  # the data set key of the paper's table
    protocols: tuple[tuple[str | None, dict], ...]  # (subset, loader protocol) per measurement
    reported: tuple[dict, ...]
    # the paper's protocol for its chance row: per subset (matches per query, gallery size,
    # exact?, how it was derived)
    paper_chance: dict

    @property
    def paper_name(self) -> str:
        return dataset_spec(self.paper_dataset).display

    @property
    def title(self) -> str:
        return f"Table {self.number}: {self.paper_name}"


def _rows5():
    return tuple({"method": m, "backbone": None, "subset": None, "rank1": r1, "rank5": r5,
                  "rank10": r10, "mAP": None} for m, r1, r5, r10 in reported.TABLE5)


def _rows67(rows):
    return tuple({"method": m, "backbone": b, "subset": None, "rank1": r1, "rank5": r5,
                  "rank10": None, "mAP": ap} for m, r1, r5, ap, b in rows)


def _rows8():
    out = []
    for m, *subsets, b in reported.TABLE8:
        for subset, (r1, r5, ap) in zip(VERIWILD_SUBSETS, subsets, strict=True):
            out.append({"method": m, "backbone": b, "subset": subset, "rank1": r1, "rank5": r5,
                        "rank10": None, "mAP": ap})
    return tuple(out)


# VERI-Wild's test subsets are named by their identities (test_3000/5000/10000 lists); the
# paper gives no gallery sizes, so its chance row assumes every identity has as many gallery
# images as the training set's mean (Sect. 3.1.3), about 9.
_WILD_M = round(reported.VERIWILD_TRAIN["images"] / reported.VERIWILD_TRAIN["identities"])
_UAV_TEST_IDS = reported.UAV_VEID_SPLITS["test"][0]
_VERI776_GALLERY, _VERI776_IDS = (reported.VERI776_TEST[k] for k in ("gallery_images",
                                                                     "identities"))
TABLES: dict[int, PaperTable] = {
    5: PaperTable(5, "table5_uav_test", "uav_veid",
                  ((None, {"split": "test"}),), _rows5(),
                  {None: (1, _UAV_TEST_IDS, True,
                          f"one gallery image for each of {_UAV_TEST_IDS:,} test ids")}),
    6: PaperTable(6, "table6_veri776", "veri776", ((None, {}),),
                  _rows67(reported.TABLE6),
                  {None: (round(_VERI776_GALLERY / _VERI776_IDS), _VERI776_GALLERY, False,
                          f"{_VERI776_GALLERY:,} gallery images of {_VERI776_IDS} ids: about "
                          f"{round(_VERI776_GALLERY / _VERI776_IDS)} true matches per query; "
                          "the same-camera junk rule ignored")}),
    7: PaperTable(7, "table7_vehicleid", "vehicleid", ((None, {}),),
                  _rows67(reported.TABLE7),
                  {None: (1, reported.VEHICLEID_LARGE_TEST_IDS, True,
                          f"one gallery image for each of {reported.VEHICLEID_LARGE_TEST_IDS:,} "
                          "ids")}),
    8: PaperTable(8, "table8_veriwild", "veriwild",
                  tuple((s, {"subset": s}) for s in VERIWILD_SUBSETS), _rows8(),
                  {s: (_WILD_M, _WILD_M * n, False,
                       f"{n:,} ids with about {_WILD_M} gallery images each (the training "
                       "set's mean; the paper gives no gallery sizes); junk ignored")
                   for s, n in reported.VERIWILD_TEST_IDS.items()}),
}
TABLE_NAMES = {t.name: n for n, t in TABLES.items()}


def paper_table(number_or_name) -> PaperTable:
    key = TABLE_NAMES.get(number_or_name, number_or_name)
    if key not in TABLES:
        raise ValueError(f"unknown comparison table {number_or_name!r}; expected one of "
                         f"{sorted(TABLES)} or {sorted(TABLE_NAMES)}")
    return TABLES[key]


# ---------------------------------------------------------------------------------------------
# Tables 5-8


def percent(x):
    """A fraction as a percentage to 4 decimals; None or NaN (not measured) as None."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(100 * x, 4)


def needs_note(table: PaperTable) -> str:
    keys = " or ".join(f"dataset={name!r}" for name, spec in DATASETS.items()
                       if spec.reported_as == table.paper_dataset and spec.loader is not None)
    return f"needs {keys} with data_root (the {table.paper_name} folder)"


def build_table(run, number, models=MODELS) -> pd.DataFrame:
    """Table `number` (5-8, or its results name): the paper's reported rows, this project's
    measured rows (each variant in `models`, seed run.seeds[0]) when the run's data set is one
    the table is about, and chance rows. Metrics in %. Measured rows: Table 5 from
    `uav_test_metrics` (the test split; its pass also gives Fig. 7's curves), Tables 6-8 from
    run.metrics (experiments.run, cached in the run folder)."""
    t = paper_table(number)
    source = f"reported (paper Table {t.number})"
    paper_name = t.paper_name
    rows = [{**r, "source": source, "evaluated_on": f"{paper_name} (paper)", "variant": None,
             "note": ""} for r in t.reported]
    measured = dataset_spec(run.dataset).reported_as == t.paper_dataset
    seed = run.seeds[0]
    for subset, protocol in t.protocols:
        if measured:
            chance = measured_chance(run.config, protocol)
            d = run.config.data
            on = (f"synthetic set (preset {d.synth_preset}, generator seed {d.synth_seed})"
                  if run.dataset == "synth" else dataset_spec(run.dataset).display)
            on += f", {'/'.join(str(v) for v in protocol.values()) or 'test'}"
        for name in models:
            row = {"method": LABELS.get(name, name), "backbone": run.config.model.backbone,
                   "subset": subset, "source": "measured", "variant": name,
                   **dict.fromkeys(METRICS)}
            if measured:
                if t.number == 5:  # the feature pass Fig. 7 reuses
                    got = uav_test_metrics(run, name)[0].as_dict()
                else:
                    got = run.metrics(name, protocol=protocol, progress=False)
                row.update({k: percent(got.get(k)) for k in METRICS}, evaluated_on=on,
                           note=f"one seed ({seed}); {got['num_queries']} queries, "
                                f"{chance['gallery']} gallery images")
            else:
                row.update(evaluated_on="", note=needs_note(t))
            rows.append(row)
        if measured:
            rows.append({"method": "chance (random ranking)", "backbone": None, "subset": subset,
                         "source": "chance (exact, measured protocol)", "variant": None,
                         "evaluated_on": on, **{k: percent(chance[k]) for k in METRICS},
                         "note": f"{chance['queries']} queries, each with its own true matches "
                                 f"among its gallery candidates (at most {chance['gallery']})"})
        m, n, exact, how = t.paper_chance[subset]
        chance = chance_level([m], [n])
        rows.append({"method": "chance (random ranking)", "backbone": None, "subset": subset,
                     "source": "chance (paper's protocol" + (")" if exact else ", approx.)"),
                     "variant": None, "evaluated_on": f"{paper_name} (paper)",
                     **{k: percent(chance[k]) for k in METRICS}, "note": how})
    cols = ["method", "source", "evaluated_on", "subset", *METRICS, "backbone", "variant", "note"]
    df = pd.DataFrame(rows)[cols]
    if t.number != 8:
        df = df.drop(columns="subset")
    return df


def table_provenance(run, models=MODELS, seeds=None) -> dict:
    """What write_table should add: the variants, their seeds and run folders. seeds None: the
    run's first seed (Tables 5-8 measure one model per variant)."""
    from vscr_core.experiments import run_dir

    seeds = list(run.seeds[:1] if seeds is None else seeds)
    note = "one seed (the run's first)" if seeds == list(run.seeds[:1]) else f"seeds {seeds}"
    return {"models": list(models), "seeds": seeds, "note": f"measured rows: {note}; metrics in %",
            "runs": {m: [run_dir(run.variant(m, s), run.runs_dir).name for s in seeds]
                     for m in models}}


# ---------------------------------------------------------------------------------------------
# Fig. 7: CMC curves


def uav_test_split(cfg, fig8_distractors: int | None = None):
    """The test split of `cfg`'s data set (synth or uav_veid: queries, one gallery image per id,
    distractors). On the synthetic default with `fig8_distractors` set, that of a tree with that
    many distractors and the same images otherwise, so that the same models meet it (Fig. 8)."""
    from vscr_core.data import synthetic_dataset
    from vscr_core.train import load_data

    if not dataset_spec(cfg.data.dataset).splits:
        raise ValueError(f"the test split with one gallery image per id and its distractors is "
                         f"UAV-VeID's protocol: dataset must be 'synth' or 'uav_veid', got "
                         f"{cfg.data.dataset!r}")
    if fig8_distractors is not None and cfg.data.root is None:
        d = cfg.data
        return synthetic_dataset(d.synth_preset, d.synth_seed, split="test",
                                 num_distractors=fig8_distractors)
    return load_data(cfg, split="test")


def kept_result_path(cfg, key: str, runs_dir=None) -> Path:
    """<key>.json in the run folder of `cfg`'s model: where a result of that model is kept."""
    from vscr_core.experiments import run_dir

    key = re.sub(r"[^A-Za-z0-9_.-]", "_", key)  # a real data set's name may hold a path
    return run_dir(cfg, runs_dir) / f"{key}.json"


def kept_result(run, name: str, seed: int, key: str, compute) -> dict:
    """A result of variant `name`'s model (seed `seed`), kept as <key>.json in its run folder
    beside its metrics and committed with them, so that the table rebuilds without the
    checkpoint; `compute(model)` makes it when absent (training the model first if need be)."""
    from vscr_core.files import atomic_write_bytes

    path = kept_result_path(run.variant(name, seed), key, run.runs_dir)
    if path.is_file():
        return json.loads(path.read_text())
    result = compute(run.trained_model(name, seed, progress=False))
    atomic_write_bytes(path, (json.dumps(result, indent=1) + "\n").encode())
    return result


def uav_test_metrics(run, name: str, max_rank: int = 20):
    """RankMetrics (CMC to `max_rank`) of variant `name` (seed run.seeds[0]) on the test split
    of synth / uav_veid, the one pass Table 5 and Fig. 7 share, kept in the run folder
    (`kept_result`). Returns (metrics, test split)."""
    from vscr_core import evaluate
    from vscr_core.experiments import features

    ds = uav_test_split(run.config)
    cfg = run.variant(name)

    def compute(model) -> dict:
        q = features(model, ds.query, cfg, progress=False)
        g = features(model, ds.gallery, cfg, progress=False)
        r = evaluate.evaluate_uav_veid(q, g, [s.pid for s in ds.query],
                                       [s.pid for s in ds.gallery], max_rank=max_rank)
        return {**asdict(r), "cmc": r.cmc.tolist()}

    got = kept_result(run, name, run.seeds[0], f"cmc-{ds.name}-r{max_rank}", compute)
    return evaluate.RankMetrics(**{**got, "cmc": np.asarray(got["cmc"])}), ds


def cmc_curves(run, models=MODELS, max_rank: int = 20) -> pd.DataFrame:
    """Measured CMC (%) at ranks 1..max_rank on the test split (synth or uav_veid), one seed:
    rows (variant, method, rank, cmc). Empty (with the columns) for other data sets, whose
    notebooks have no UAV test split to draw."""
    cols = ["variant", "method", "rank", "cmc", "evaluated_on", "queries", "gallery"]
    if not dataset_spec(run.dataset).splits:
        return pd.DataFrame(columns=cols)
    rows = []
    for name in models:
        r, ds = uav_test_metrics(run, name, max_rank)
        rows += [{"variant": name, "method": LABELS.get(name, name), "rank": k + 1,
                  "cmc": round(100 * float(c), 4), "evaluated_on": ds.name,
                  "queries": r.num_queries, "gallery": len(ds.gallery)}
                 for k, c in enumerate(r.cmc)]
    return pd.DataFrame(rows, columns=cols)


def plot_cmc(curves: pd.DataFrame, table5: pd.DataFrame, out_png) -> Path:
    """Fig. 7: measured CMC curves (solid) with the paper's reported Table 5 rank-1/5/10
    points (markers, dotted) and the measured protocol's chance (grey)."""
    import seaborn as sns
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5), dpi=150, layout="constrained")
    ax = fig.subplots()
    paper_rows = table5[table5["source"].str.startswith("reported")]
    colours = sns.color_palette("tab10", len(paper_rows) + 2)
    marks = "os^vD<>ph*"
    for i, r in enumerate(paper_rows.itertuples()):
        ax.plot([1, 5, 10], [r.rank1, r.rank5, r.rank10], ls=":", lw=1, marker=marks[i % 10],
                ms=6, color=colours[i + 2], label=f"reported: {r.method}")
    for i, (_, c) in enumerate(curves.groupby("variant", sort=False)):
        ax.plot(c["rank"], c["cmc"], lw=2.2, color=colours[i],
                label=f"measured: {c['method'].iloc[0]}")
    chance = table5[table5["source"].str.startswith("chance (exact")]
    if len(curves) and len(chance):
        g = int(curves["gallery"].iloc[0])
        ranks = np.arange(1, int(curves["rank"].max()) + 1)
        ax.plot(ranks, 100 * np.minimum(ranks, g) / g, color="grey", ls="--", lw=1,
                label=f"chance, measured protocol (k / {g})")
    on = curves["evaluated_on"].iloc[0] if len(curves) else "no measured curves for this data set"
    top = max(20, int(curves["rank"].max()) if len(curves) else 20)
    ax.set(xlabel="rank k", ylabel="CMC@k (%)", ylim=(0, 101), xlim=(0.5, top + 0.5),
           xticks=[1, *range(5, top + 1, 5)],
           title=f"Fig. 7: CMC on the test split\nmeasured: {on}; reported: UAV-VeID test "
                 "(paper Table 5)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=1)
    return save_figure(fig, out_png)


def statement(tables: dict[int, pd.DataFrame], curves: pd.DataFrame) -> str:
    """The measured rows in words, read from the tables (a CMC curve that disagrees with Table 5
    at rank 1 is flagged); for tables without a measured row, what they need."""
    lines = []
    for number, df in sorted(tables.items()):
        t = paper_table(number)
        meas = df[df["source"] == "measured"]
        if meas["rank1"].isna().all():
            lines.append(f"Table {number} ({t.paper_name}): reported rows only; "
                         f"its measured rows {needs_note(t).replace('needs', 'need', 1)}.")
            continue
        groups = meas.groupby("subset", sort=False) if "subset" in meas else [(None, meas)]
        for subset, g in groups:
            by = g.set_index("variant")
            chance = df[df["source"].str.startswith("chance (exact")]
            if subset is not None:
                chance = chance[chance["subset"] == subset]
            where = str(g["evaluated_on"].iloc[0])
            parts = [f"{by.loc[v, 'method']} rank-1 {by.loc[v, 'rank1']:.2f} %, "
                     f"mAP {by.loc[v, 'mAP']:.2f} %" for v in by.index]
            lines.append(f"Table {number}, measured on {where} ({g['note'].iloc[0]}): "
                         + "; ".join(parts)
                         + f"; chance rank-1 {chance['rank1'].iloc[0]:.2f} %.")
            if {"baseline", "vscr"} <= set(by.index):
                d = by.loc["vscr", "rank1"] - by.loc["baseline", "rank1"]
                rep = df[df["source"].str.startswith("reported")]
                rep_v = rep[rep["method"].str.startswith("VSCR")]
                if subset is not None:
                    rep_v = rep_v[rep_v["subset"] == subset]
                lines.append(f"  VSCR minus baseline: {d:+.2f} rank-1 points. The paper reports "
                             f"VSCR at {rep_v['rank1'].iloc[0]:.2f} % rank-1 on "
                             f"{t.paper_name}"
                             + (f" ({subset})" if subset else "")
                             + (" (a different, real data set)" if number == 5
                                and "synthetic" in where else "") + ".")
    if len(curves):
        t5 = tables.get(5)
        for name, c in curves.groupby("variant", sort=False):
            r1 = float(c.loc[c["rank"] == 1, "cmc"].iloc[0])
            line = f"Fig. 7 {c['method'].iloc[0]}: CMC@1 {r1:.2f} %, @20 " \
                   f"{float(c['cmc'].iloc[min(19, len(c) - 1)]):.2f} %"
            if t5 is not None:
                row = t5[(t5["source"] == "measured") & (t5["variant"] == name)]
                if len(row) and abs(float(row["rank1"].iloc[0]) - r1) >= 1e-3:
                    line += f" (DIFFERS from Table 5's {float(row['rank1'].iloc[0]):.4f} %)"
            lines.append(line + ".")
    return "\n".join(lines)


__all__ = [
    "LABELS", "METRICS", "MODELS", "TABLES", "PaperTable", "VERIWILD_SUBSETS", "build_table",
    "cmc_curves", "kept_result", "kept_result_path", "needs_note", "paper_table", "percent",
    "plot_cmc", "statement", "table_provenance", "uav_test_metrics", "uav_test_split",
]
