"""Tables and figures on disk: where they go, their provenance, and figures/index.html.

A table is <out_dir>/results/<name>.csv with a JSON beside it saying where its numbers came from
(commit, notebook, profile, data set, seeds, device, wall time, plus what the notebook adds). A
figure is <out_dir>/figures/<name>.png; FIGURES registers each with the notebook that draws it
and the tables shown under it in figures/index.html. Writes are atomic (files.py), so an
interrupted notebook never leaves a half table. out_dir None means the repository root (the
committed results/ and figures/); tests pass a temporary folder.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from vscr_core.files import REPO_ROOT, atomic_write_bytes

RESULTS, FIGURES_DIR = "results", "figures"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def resolve_out_dir(out_dir) -> Path:
    """None or "" mean the repository root (the committed results/ and figures/)."""
    return Path(out_dir) if out_dir else REPO_ROOT


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


def markdown_table(df: pd.DataFrame) -> str:
    """`df` as a Markdown table, empty cells for missing values (the README's tables)."""
    cells = df.astype(object).where(df.notna(), "")
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in cells.to_numpy()]
    return "\n".join(lines)


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
                "The paper's claims on this project's data: for each, the measured difference "
                "B - A with its 95 % interval over seeds, the equivalence margin as a grey band "
                "where the claim is that B adds little, and the verdict; the first table sets "
                "the paper's difference beside it. The second is the secondary reading without "
                "the runs that failed the convergence rule (the cpu study only).",
                ("claims", "claims_converged_runs", "table4_resolution")),
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
