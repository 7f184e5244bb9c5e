"""What the notebooks call: parameters, provenance, tables and figures on disk, figures/index.html.

Every notebook in notebooks/ has one `parameters` cell (profile, dataset, data_root, device, seeds,
out_dir) and then a few lines like these:

    run = NotebookRun("00_datasets", profile, dataset, data_root, device, seeds, out_dir)
    run.write_table(df, "table1_datasets")          # <out_dir>/results/table1_datasets.csv + .json
    viz.plot_...(..., run.figure_path("fig3_dataset_statistics"))   # <out_dir>/figures/....png
    run.finish()                                     # rebuilds <out_dir>/figures/index.html

A table's JSON says where its numbers came from: commit, notebook, profile, data set, seeds,
device, wall time since the notebook started, plus whatever the notebook adds. Writes are atomic
(files.py), so an interrupted notebook never leaves a half table. out_dir defaults to the
repository root, so a plain run fills the committed results/ and figures/; tests pass a temporary
folder.

The second half holds what notebooks 00 (Table 1, Fig. 3) and 01 (Fig. 6) compute beyond plain
calls into vscr_core, with the paper's reported numbers beside them.
"""

from __future__ import annotations

import html
import json
import platform
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vscr_core.config import PROFILES
from vscr_core.config import profile as profile_config
from vscr_core.data.registry import dataset_spec
from vscr_core.files import REPO_ROOT, atomic_write_bytes, git_commit
from vscr_core.paper import reported

# Notebooks run without ipywidgets; tqdm.auto then falls back to text bars and warns once.
warnings.filterwarnings("ignore", message="IProgress not found")

RESULTS, FIGURES_DIR = "results", "figures"
# The profile whose outputs are the committed results/ and figures/ (the converged study).
COMMITTED_PROFILE = "cpu"
# Seeds a profile uses when the notebook's `seeds` parameter is None.
DEFAULT_SEEDS = {"smoke": (0,), "quick": (0, 1, 2), "cpu": (0, 1, 2, 3, 4), "paper": (0, 1, 2)}
# How many of those seeds Table 2's eight rows get: the cpu study affords two (each seed of its
# six rows beyond Table 4 costs about 1.5 hours on 2 cores).
TABLE2_SEEDS = {"cpu": 2}
# The split notebooks 02-03 evaluate on: the cpu study reports on the 268 test identities, whose
# evaluation noise is far smaller than the 73 validation identities' (those draw its learning
# curves and chose its MSCL form); the others keep the paper's validation split.
ABLATION_SPLIT = {"cpu": "test"}
# Distractors in Fig. 8's synthetic gallery, where a profile wants more than its preset has (the
# quick preset's 500 barely move rank-1; the paper's curve goes to 300K): a second tree with
# that many, the same bytes otherwise, so the same models are evaluated on it.
FIG8_DISTRACTORS = {"cpu": 50_000}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---------------------------------------------------------------------------------------------
# Parameters and provenance


def resolve_out_dir(out_dir) -> Path:
    """None or "" mean the repository root (the committed results/ and figures/)."""
    return Path(out_dir) if out_dir else REPO_ROOT


def resolve_seeds(seeds, profile: str) -> tuple[int, ...]:
    """None: the profile's default; an int, "0,1,2", "[0, 1]" or a list: those seeds."""
    if seeds is None:
        return DEFAULT_SEEDS[profile]
    if isinstance(seeds, str):
        seeds = [s for s in re.split(r"[\s,\[\]()]+", seeds) if s]
    if isinstance(seeds, int | np.integer):
        seeds = [seeds]
    try:
        out = tuple(int(s) for s in seeds)
    except (TypeError, ValueError) as e:
        raise ValueError(f"seeds={seeds!r}: expected an int, a list of ints or '0,1,2'") from e
    if not out:
        raise ValueError(f"seeds={seeds!r}: expected at least one seed")
    return out


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name.endswith((".csv", ".json", ".png")):
        raise ValueError(f"table/figure name {name!r}: expected a bare file stem such as "
                         "'table1_datasets' (letters, digits, _ . -; no folder, no suffix)")
    return name


def table_path(name: str, out_dir=None) -> Path:
    return resolve_out_dir(out_dir) / RESULTS / f"{_check_name(name)}.csv"


def figure_path(name: str, out_dir=None) -> Path:
    """<out_dir>/figures/<name>.png, its folder created."""
    path = resolve_out_dir(out_dir) / FIGURES_DIR / f"{_check_name(name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, tuple | set):
        return list(x)
    raise TypeError(f"provenance value {x!r} ({type(x).__name__}) is not JSON-serialisable")


def write_table(df: pd.DataFrame, name: str, out_dir, provenance: dict) -> Path:
    """`df` as <out_dir>/results/<name>.csv and `provenance` (plus the table's shape and columns)
    as <name>.json beside it, both atomically. Returns the CSV's path."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"table {name!r}: expected a pandas DataFrame, got {type(df).__name__}")
    path = table_path(name, out_dir)
    meta = {**provenance, "table": name, "rows": len(df), "columns": list(map(str, df.columns)),
            "written": datetime.now(UTC).isoformat(timespec="seconds")}
    blob = (json.dumps(meta, indent=2, default=_jsonable) + "\n").encode()  # fails before writing
    atomic_write_bytes(path, df.to_csv(index=False).encode())
    atomic_write_bytes(path.with_suffix(".json"), blob)
    return path


def read_table(name: str, out_dir=None) -> tuple[pd.DataFrame, dict]:
    """(table, provenance) written by write_table; a missing file is named in the error."""
    path = table_path(name, out_dir)
    if not path.is_file():
        raise FileNotFoundError(f"table {name!r}: {path} does not exist; run the notebook that "
                                f"writes it ({notebook_of(name) or 'see FIGURES'})")
    meta = path.with_suffix(".json")
    return pd.read_csv(path), json.loads(meta.read_text()) if meta.is_file() else {}


@dataclass
class NotebookRun:
    """One execution of a notebook: its parameters, its start time, and where it writes."""

    notebook: str
    profile: str = "quick"
    dataset: str = "synth"
    data_root: str | None = None
    device: str = "auto"
    seeds: tuple[int, ...] | None = None
    out_dir: Path | None = None
    view_labels: str | None = None  # a file of `vscr viewpoint label` (data without views)
    data_csv: str | None = None  # the folder layout's CSV (path,pid[,camid][,view],split)
    started: float = field(default_factory=time.perf_counter)
    written: list[Path] = field(default_factory=list)

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"profile={self.profile!r}; expected one of {', '.join(PROFILES)}")
        self.seeds = resolve_seeds(self.seeds, self.profile)
        self.out_dir = resolve_out_dir(self.out_dir)
        self.commit = git_commit()

    @property
    def config(self):
        """The profile's Config with this run's data set (and the paper's choices for it, see
        config.profile), root, CSV, view labels and device."""
        return profile_config(self.profile, **{
            "data.dataset": self.dataset, "data.root": self.data_root, "data.csv": self.data_csv,
            "data.view_labels": self.view_labels, "train.device": self.device})

    @property
    def fig8_distractors(self) -> int | None:
        """Distractors of Fig. 8's synthetic tree (None: the preset's own)."""
        return FIG8_DISTRACTORS.get(self.profile) if self.dataset == "synth" else None

    @property
    def view_classes(self) -> int:
        """The view classes of the run's data set (train.view_classes)."""
        from vscr_core.train import view_classes

        return view_classes(self.config)

    @property
    def runs_dir(self) -> Path:
        """Trained models live in <out_dir>/results/runs/, shared by all notebooks."""
        return self.out_dir / RESULTS / "runs"

    def variant(self, name: str, seed: int | None = None):
        """The Config of an ablation variant (variants.VARIANTS) under this run's parameters;
        seed None: the run's first seed."""
        from vscr_core.paper.variants import variant_config

        return variant_config(self.config, name, self.seeds[0] if seed is None else seed)

    def trained_model(self, name: str, seed: int | None = None, progress: bool = True):
        """Variant `name`, trained once in runs_dir (reused by every notebook that asks)."""
        from vscr_core import experiments

        return experiments.trained_model(self.variant(name, seed), self.runs_dir, progress)

    def metrics(self, name: str, seed: int | None = None, protocol: dict | None = None,
                num_distractors: int = 0, progress: bool = True) -> dict:
        """experiments.run of variant `name`: its metrics on `protocol` (default: validation)."""
        from vscr_core import experiments

        return experiments.run(self.variant(name, seed), protocol=protocol,
                               num_distractors=num_distractors, runs_dir=self.runs_dir,
                               progress=progress)

    def chance(self, protocol: dict | None = None, num_distractors: int = 0) -> dict:
        """What a random ranking scores (fractions) under the evaluation protocol experiments.run
        uses (default: the validation split of UAV-VeID and the synthetic set)."""
        from vscr_core.experiments import measured_chance

        return measured_chance(self.config, protocol, num_distractors)

    @property
    def ablation_protocol(self) -> dict | None:
        """The evaluation protocol of Tables 2-4 (experiments.run's `protocol`; None: the data
        set's default, validation for UAV-VeID and the synthetic set)."""
        split = ABLATION_SPLIT.get(self.profile)
        return (dataset_spec(self.dataset).protocol(split) or None) if split else None

    @property
    def ablation_split(self) -> str:
        from vscr_core.experiments import default_protocol

        return (self.ablation_protocol or default_protocol(self.config)).get("split", "test")

    @property
    def table2_seeds(self) -> tuple[int, ...]:
        return self.seeds[:TABLE2_SEEDS.get(self.profile, 1)]

    def provenance(self, **extra) -> dict:
        return {"commit": self.commit, "notebook": self.notebook, "profile": self.profile,
                "dataset": self.dataset, "data_root": self.data_root, "data_csv": self.data_csv,
                "view_labels": self.view_labels, "seeds": list(self.seeds),
                "device": self.device, "torch": torch.__version__,
                "python": platform.python_version(), "threads": torch.get_num_threads(),
                "wall_s": round(time.perf_counter() - self.started, 1), **extra}

    def write_table(self, df: pd.DataFrame, name: str, **extra) -> Path:
        path = write_table(df, name, self.out_dir, self.provenance(**extra))
        self.written.append(path)
        return path

    def figure_path(self, name: str) -> Path:
        path = figure_path(name, self.out_dir)
        self.written.append(path)
        return path

    def finish(self) -> Path:
        """Rebuild figures/index.html and say what was written."""
        index = build_index(self.out_dir)
        print(f"{self.notebook} ({self.profile}) finished in "
              f"{time.perf_counter() - self.started:.1f} s; wrote:")
        for p in dict.fromkeys([*self.written, index]):
            print(f"  {p}")
        return index


# ---------------------------------------------------------------------------------------------
# make reproduce: every notebook in order


def notebook_paths(only=None) -> list[Path]:
    """notebooks/*.ipynb in order; `only`: names or prefixes such as "02" or "03_view"."""
    paths = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        chosen = [p for p in paths if any(p.stem.startswith(str(o)) for o in only)]
        unknown = [o for o in only if not any(p.stem.startswith(str(o)) for p in paths)]
        if unknown:
            raise ValueError(f"no notebook matches {unknown}; have {[p.stem for p in paths]}")
        paths = chosen
    return paths


def reproduce(profile: str = "quick", out_dir=None, only=None) -> list[Path]:
    """Execute the notebooks with papermill in `profile`, one after the other, printing a line
    per notebook and the notebooks' own lines (one per trained or reused run). Without out_dir
    the committed profile (COMMITTED_PROFILE) executes the notebooks in place and fills the
    committed results/ and figures/, and every other profile writes into out/<profile>/; with
    out_dir, the executed copies, results/ and figures/ go there."""
    import sys

    import papermill

    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}; expected one of {', '.join(PROFILES)}")
    if out_dir is None and profile != COMMITTED_PROFILE:
        out_dir = REPO_ROOT / "out" / profile  # never over the converged study's outputs
    paths = notebook_paths(only)
    params = {"profile": profile, **({"out_dir": str(Path(out_dir).resolve())} if out_dir else {})}
    written, tic = [], time.perf_counter()
    for i, src in enumerate(paths, 1):
        dst = Path(out_dir) / "notebooks" / src.name if out_dir else src
        dst.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{i}/{len(paths)}] {src.stem} ({profile}) ...", flush=True)
        start = time.perf_counter()
        # stdout of the cells (run lines, statements) comes through; tqdm bars on stderr do not
        papermill.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                                   progress_bar=False, stdout_file=sys.stdout,
                                   cwd=str(REPO_ROOT / "notebooks"))
        print(f"[{i}/{len(paths)}] {src.stem} done in {time.perf_counter() - start:.0f} s "
              f"(total {(time.perf_counter() - tic) / 60:.1f} min)", flush=True)
        written.append(dst)
    if out_dir is None and any(p.stem.startswith("09") for p in paths):
        from vscr_core.paper import claims

        readme = REPO_ROOT / "README.md"
        claims.update_readme(readme, claims.readme_section())
        print(f"updated the results section of {readme}")
    return written


# ---------------------------------------------------------------------------------------------
# figures/index.html


@dataclass(frozen=True)
class FigureEntry:
    name: str  # figures/<name>.png
    notebook: str  # the notebook that draws it
    caption: str  # what it shows; no measured numbers (those are in the table)
    tables: tuple[str, ...] = ()  # results/<table>.csv shown under the figure


# The paper's figures and tables, in the order the notebooks make them. Notebooks 02-08 add
# their entries here; a registered figure not yet drawn is listed as missing.
FIGURES: tuple[FigureEntry, ...] = (
    FigureEntry("fig3_dataset_statistics", "00_datasets",
                "Fig. 3 / Table 1: the data set's box sizes (width and height of the stored "
                "crops), images per identity over the labelled splits, and the viewpoint "
                "histogram of the training split (the only split with view labels, as in "
                "UAV-VeID). The first table sets the measured data set beside the four data sets "
                "of the paper's Table 1; the second compares its splits with UAV-VeID's.",
                ("table1_datasets", "table1_splits")),
    FigureEntry("synth_contact_sheet", "00_datasets",
                "Sample crops: training identities (rows) by viewpoint (columns), each crop "
                "scaled to its cell with its stored size under it, and a row of distractors "
                "(false detections and vehicles outside every split).",
                ()),
    FigureEntry("fig6_viewpoint", "01_viewpoint",
                "Fig. 6: accuracy of the viewpoint classifier on held-out identities against the "
                "share of labelled training images it was trained on, mean and standard "
                "deviation over seeds. The paper's only number, for VeRi-776 with 3 views at "
                "25 %, is drawn as the red reference; chance is dotted.",
                ("viewpoint_fig6_summary", "viewpoint_fig6")),
    FigureEntry("viewpoint_confusion", "01_viewpoint",
                "Confusion matrix of the viewpoint classifier at the smallest labelled share, "
                "summed over seeds (rows: true view, columns: predicted view; % of the row and "
                "counts).",
                ("viewpoint_fig6_summary",)),
    FigureEntry("table2_branch_ablation", "02_branch_ablation",
                "Table 2: the branch ablation, rows (a)-(h): rank-1 and mAP measured on the "
                "validation split beside the paper's reported UAV-VeID validation figures; the "
                "dotted line is chance.",
                ("table2_branch_ablation",)),
    FigureEntry("table4_variants", "03_view_ablation",
                "Tables 3 and 4: baseline, view adversary (3 and 4 classes), multi-scale and "
                "VSCR; measured mean and standard deviation over seeds beside the paper's "
                "reported UAV-VeID validation figures.",
                ("table3_view_adversary", "table4_variants", "table4_runs")),
    FigureEntry("learning_curves", "03_view_ablation",
                "Learning curves of Tables 3 and 4's models (profiles that validate every "
                "epoch, the cpu study): each branch's ID loss and the validation rank-1 per "
                "epoch, one line per seed. Whether each run converged is in "
                "results/training_summary.csv (written by python -m vscr_core.paper.study).",
                ()),
    FigureEntry("fig7_cmc", "04_comparison",
                "Fig. 7: CMC (ranks 1-20) on the test split of the notebook's UAV data set: "
                "baseline and VSCR measured with one seed (solid), the paper's reported rank-1/5/"
                "10 points of Table 5 on the real UAV-VeID test split (markers, dotted), and "
                "chance for the measured protocol (dashed). Tables 5-8 hold reported, measured "
                "and chance rows; the measured rows of Tables 6-8 stay empty unless the notebook "
                "is given that data set.",
                ("fig7_cmc", "table5_uav_test", "table6_veri776", "table7_vehicleid",
                 "table8_veriwild")),
    FigureEntry("fig8_distractors", "05_distractors",
                "Fig. 8: rank-1 (left) and mAP (right) on the test split as the first n "
                "distractors are added to the gallery; baseline and VSCR measured with one seed; "
                "chance dotted. The paper draws this for UAV-VeID with up to 300K distractors "
                "and prints no numbers.",
                ("fig8_distractors",)),
    FigureEntry("fig9_gradcam", "06_gradcam",
                "Fig. 9: Grad-CAM on the last res5 block of branch d = 1 (fp32); the target is "
                "the cosine similarity between the query's feature and that of the same "
                "identity's gallery image; rows: input, baseline, VSCR, at the model's input "
                "resolution. The table gives each model's similarity, the share of each map's "
                "mass in the middle half of the crop (a flat map: 0.25) and its entropy relative "
                "to a flat map.",
                ("fig9_gradcam",)),
    FigureEntry("fig10_tsne", "07_tsne",
                "Fig. 10: t-SNE of the test features of 20 random identities (seeded), baseline "
                "(a) and VSCR (b); one colour per identity, stars are gallery images. The table "
                "measures separability on the features themselves: leave-one-out 1-NN accuracy, "
                "silhouette, and same-id / different-id mean distance.",
                ("fig10_tsne",)),
    FigureEntry("fig11_retrieval", "08_retrieval",
                "Fig. 11: top-10 retrievals per query, baseline row above VSCR row; the query "
                "is boxed blue, true matches green, false matches red.",
                ("fig11_retrieval",)),
    FigureEntry("fig12_retrieval", "08_retrieval",
                "Fig. 12: top-10 retrievals, baseline row above VSCR row (blue query, green true, "
                "red false). The paper shows VeRi-776; run on VeRi-776 these are random queries, "
                "on any other data set they are queries where the two models disagree at rank 1 "
                "(the table's selection column says which).",
                ("fig12_retrieval",)),
    FigureEntry("claims", "09_claims",
                "The paper's claims on this project's data: for each, the measured difference in "
                "the claim's direction (bars), twice its standard error from the seed-to-seed "
                "spread (grey band), and the verdict; the table sets the paper's difference "
                "beside it.",
                ("claims",)),
)


def notebook_of(table_or_figure: str) -> str | None:
    for f in FIGURES:
        if table_or_figure == f.name or table_or_figure in f.tables:
            return f.notebook
    return None


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
figure { margin: 1em 0 0.5em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.95em; color: #333; margin-top: 0.4em; }
.table { overflow-x: auto; margin: 0.6em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } .prov { font-size: 0.8em; color: #666; } .missing { color: #a00; }
"""


def _cell(v):
    """A table cell for the page: blanks for gaps, 4 significant digits, long text cut."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return v[:40] + "…" if isinstance(v, str) and len(v) > 40 else v


def _table_html(name: str, out_dir: Path, max_rows: int = 40) -> str:
    path = table_path(name, out_dir)
    if not path.is_file():
        return f'<p class="missing">table {html.escape(name)}: not produced yet</p>'
    df, meta = read_table(name, out_dir)
    shown = df.head(max_rows).map(_cell)
    more = f" (first {max_rows} of {len(df)} rows)" if len(df) > max_rows else ""
    prov = ", ".join(f"{k} {meta[k]}" for k in ("profile", "dataset", "seeds", "commit", "wall_s")
                     if k in meta)
    return (f'<div class="table"><b><a href="../{RESULTS}/{name}.csv">{RESULTS}/{name}.csv'
            f'</a></b>{more}<br><span class="prov">{html.escape(prov)}</span>'
            f'{shown.to_html(index=False, na_rep="", border=0)}</div>')


def build_index(out_dir=None, figures: tuple[FigureEntry, ...] = FIGURES) -> Path:
    """<out_dir>/figures/index.html: every registered figure with its caption and its tables,
    grouped by notebook; figures not drawn yet are listed as missing."""
    out_dir = resolve_out_dir(out_dir)
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>vscr: figures and tables</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>vscr: the paper's figures and tables, reproduced</h1>",
             "<p>Teng et al., <i>Viewpoint and Scale Consistency Reinforcement for UAV Vehicle "
             "Re-Identification</i>, IJCV 2021. Each section is one notebook in "
             "<code>notebooks/</code>; columns marked <i>reported</i> are the paper's numbers, "
             "<i>measured</i> ones are this project's.</p>"]
    notebook = None
    for f in figures:
        if f.notebook != notebook:
            notebook = f.notebook
            parts.append(f"<h2>notebooks/{html.escape(notebook)}.ipynb</h2>")
        png = out_dir / FIGURES_DIR / f"{f.name}.png"
        if png.is_file():
            parts.append(f'<figure id="{f.name}"><img src="{f.name}.png" alt="{f.name}">'
                         f"<figcaption><b>{f.name}.png</b>: {html.escape(f.caption)}"
                         "</figcaption></figure>")
        else:
            parts.append(f'<p class="missing">{f.name}.png: not drawn yet '
                         f"(run notebooks/{html.escape(f.notebook)}.ipynb)</p>")
        parts.extend(_table_html(t, out_dir) for t in f.tables)
    parts.append("</body></html>\n")
    return atomic_write_bytes(out_dir / FIGURES_DIR / "index.html", "\n".join(parts).encode())


# ---------------------------------------------------------------------------------------------
# 00_datasets: Table 1 and Fig. 3

_PID_STRIDE = 10**7  # keeps ids of different splits apart when they are pooled


@dataclass
class DatasetParts:
    """A data set's images by split: train, val, test (each labelled split's query + gallery),
    distractors; `all` pools the labelled splits with ids kept apart."""

    name: str
    num_views: int
    splits: dict = field(default_factory=dict)  # split -> list[Sample]

    def as_dataset(self):
        """The training split (with its view labels) and the distractors as a ReIDDataset."""
        from vscr_core.data import ReIDDataset

        return ReIDDataset(self.name, self.splits["train"], [], [],
                           self.splits.get("distractors", []), self.num_views)

    @property
    def all(self):
        pooled = []
        for k, split in enumerate(s for s in ("train", "val", "test") if s in self.splits):
            pooled += [s._replace(pid=s.pid + k * _PID_STRIDE) for s in self.splits[split]]
        return pooled


def load_parts(cfg) -> DatasetParts:
    """The data set a notebook's Config reads (`run.config`), by split. The synthetic default is
    generated on first use (data.root None: the cache under $VSCR_DATA or data/)."""
    from vscr_core.train import load_data

    d = cfg.data
    spec = dataset_spec(d.dataset)
    if spec.splits:  # UAV-VeID's layout: train, val and test
        val = load_data(cfg, split="val")
        test = load_data(cfg, split="test", distractors=False)
        name = f"synth-{d.synth_preset}-s{d.synth_seed}" if d.dataset == "synth" else spec.display
        splits = {"train": val.train, "val": val.query + val.gallery,
                  "test": test.query + test.gallery, "distractors": val.distractors}
        return DatasetParts(name, val.num_views, splits)
    ds = load_data(cfg)
    return DatasetParts(spec.display, ds.num_views, {
        "train": ds.train, "test": ds.query + ds.gallery, "distractors": ds.distractors})


def split_statistics(parts: DatasetParts, box_sizes: bool = True) -> dict:
    """data.dataset_statistics of each split and of `all` (labelled splits pooled)."""
    from vscr_core.data import ReIDDataset, dataset_statistics

    out = {}
    for split, samples in [*parts.splits.items(), ("all", parts.all)]:
        ds = ReIDDataset(f"{parts.name}-{split}", samples, [], [], [], parts.num_views)
        out[split] = dataset_statistics(ds, box_sizes=box_sizes)["train"]
    return out


def table1(parts: DatasetParts, stats: dict) -> pd.DataFrame:
    """The paper's Table 1 rows (source 'reported') and the measured data set (source
    'measured'). Images per id of a reported row is images / identities of that row."""
    rows = [{"dataset": n, "source": "reported (paper Table 1)", "identities": ids,
             "images": imgs, "images_per_id": round(imgs / ids, 2), "distractors": d,
             "cameras": cam, "views": views, "year": year}
            for n, ids, imgs, d, cam, views, year in reported.TABLE1]
    whole = stats["all"]
    labelled = sum(v for k, v in stats["train"]["views"].items() if k != "unknown")
    rows.append({"dataset": parts.name, "source": "measured", "identities": whole["ids"],
                 "images": whole["images"],
                 "images_per_id": round(whole["images_per_id"]["mean"], 2),
                 "distractors": stats.get("distractors", {}).get("images", 0),
                 "cameras": "simulated UAV" if parts.name.startswith("synth") else "",
                 "views": f"{parts.num_views} classes ({labelled} train images labelled)"
                 if parts.num_views else "none labelled", "year": ""})
    return pd.DataFrame(rows)


def split_table(stats: dict) -> pd.DataFrame:
    """Per split: identities, images, images per id and box sizes measured, beside UAV-VeID's
    reported split sizes (the synthetic set keeps its proportions at a smaller scale)."""
    rows = []
    for split, st in stats.items():
        rep = reported.UAV_VEID_SPLITS.get(split)
        rows.append({
            "split": split,
            "identities_reported": rep[0] if rep else None,
            "images_reported": rep[1] if rep else None,
            "images_per_id_reported": round(rep[1] / rep[0], 2) if rep and rep[0] else None,
            "identities_measured": st["ids"], "images_measured": st["images"],
            "images_per_id_measured": round(st["images_per_id"]["mean"], 2) if st["ids"] else None,
            "box_w_median_px": st.get("box_w", {}).get("median"),
            "box_h_median_px": st.get("box_h", {}).get("median"),
        })
    df = pd.DataFrame(rows)
    counts = ["identities_reported", "images_reported", "identities_measured", "images_measured"]
    return df.astype({c: "Int64" for c in counts})  # integers with gaps, not 1797.0


def fig3(run: NotebookRun, parts: DatasetParts, stats: dict) -> Path:
    """Fig. 3 of the labelled splits pooled; views from the training split (the only one with
    view labels, as in UAV-VeID)."""
    from vscr_core import viz

    return viz.plot_dataset_statistics(
        stats["all"], run.figure_path("fig3_dataset_statistics"), views=stats["train"]["views"],
        title=f"Fig. 3: {parts.name} (box sizes and images per id: all labelled splits; "
              "views: training split)")


def contact_sheet(run: NotebookRun, parts: DatasetParts) -> Path:
    """figures/synth_contact_sheet.png (<dataset>_contact_sheet.png for a real data set)."""
    from vscr_core import viz

    name = "synth_contact_sheet" if run.dataset == "synth" else f"{run.dataset}_contact_sheet"
    return viz.contact_sheet(parts.as_dataset(), run.figure_path(name), seed=run.seeds[0])


def table1_statement(table: pd.DataFrame, splits: pd.DataFrame) -> str:
    """One sentence per fact of the measured row, from the tables (not typed by hand)."""
    m = table[table["source"] == "measured"].iloc[0]
    uav = table[table["dataset"] == "UAV-VeID"].iloc[0]
    lab = splits[splits["split"].isin(["train", "val", "test"])]
    share_m = (lab["identities_measured"] / lab["identities_measured"].sum()).round(3).tolist()
    share_r = (lab["identities_reported"] / lab["identities_reported"].sum()).round(3).tolist()
    return (f"Measured {m['dataset']}: {m['identities']} identities, {m['images']} labelled "
            f"images ({m['images_per_id']} per identity; UAV-VeID's reported counts give "
            f"{uav['images_per_id']}), {m['distractors']} distractors; views: {m['views']}.\n"
            f"Identity shares train/val/test: measured {share_m}, UAV-VeID {share_r}.")


# ---------------------------------------------------------------------------------------------
# 01_viewpoint: Fig. 6


@dataclass(frozen=True)
class Fig6Settings:
    fractions: tuple[float, ...]  # shares of the labelled training images
    config: object  # viewpoint.ViewpointConfig
    preset: str  # synthetic generator preset


def fig6_settings(profile: str) -> Fig6Settings:
    """What Fig. 6 trains under each profile. quick is the published run (FIG6_CONFIG)."""
    from vscr_core.viewpoint import FIG6_CONFIG, ViewpointConfig

    return {
        # a few seconds: the curve's plumbing, not its numbers
        "smoke": Fig6Settings((0.5, 1.0), ViewpointConfig(image_size=32, steps=8, batch_size=16),
                              "smoke"),
        "quick": Fig6Settings((0.25, 0.5, 0.75, 1.0), FIG6_CONFIG, "quick"),
        "cpu": Fig6Settings((0.25, 0.5, 0.75, 1.0), FIG6_CONFIG, "quick"),  # the same classifier
        # GPU box: ImageNet init, larger input (the paper's VGG_CNN_M_1024 saw 224 px)
        "paper": Fig6Settings((0.25, 0.5, 0.75, 1.0),
                              ViewpointConfig(image_size=128, steps=2000, pretrained="imagenet"),
                              "quick"),  # config.PAPER's synth preset; real data: data_root
    }[profile]


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
    plots. On the synthetic default this is viewpoint.run_fig6, the code path of the published
    results; another data set (with view labels) goes through the same fraction_curve."""
    from vscr_core import viewpoint as vp

    st = fig6_settings(run.profile)
    cfg = replace(st.config, device=run.device)
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
        df = vp.run_fig6(st.preset, synth_seed=0, fractions=st.fractions, seeds=seeds, cfg=cfg,
                         out_csv=table_path(name, run.out_dir),
                         figures_dir=run.out_dir / FIGURES_DIR, progress=progress)
        # run_fig6 wrote its provenance; add the notebook's fields (profile, notebook, ...)
        _, meta = read_table(name, run.out_dir)
        run.write_table(df, name, **meta)
    elif df is None:
        ds = load_parts(run.config)
        df = vp.fraction_curve(ds.as_dataset(), st.fractions, seeds, cfg, progress=progress)
        run.write_table(df, name, **{"data set": ds.name, **want})
    for r in df.itertuples():
        print(f"  seed {r.seed}, {100 * r.fraction:.0f} % ({r.train_images} images): "
              f"accuracy {r.accuracy:.4f} in {r.wall_s} s")
    vp.plot_fraction_curve(df, run.figure_path("fig6_viewpoint"))
    vp.plot_confusion(df, run.figure_path("viewpoint_confusion"), fraction=min(st.fractions))
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


__all__ = [
    "DEFAULT_SEEDS", "FIGURES", "DatasetParts", "FigureEntry", "Fig6Settings", "NotebookRun",
    "notebook_paths", "reproduce",
    "build_index", "contact_sheet", "fig3",
    "fig6_runs", "fig6_settings", "fig6_statement", "fig6_summary", "figure_path", "git_commit",
    "load_parts", "read_table", "resolve_out_dir", "resolve_seeds", "split_statistics",
    "split_table", "table1", "table1_statement", "table_path", "write_table",
]
