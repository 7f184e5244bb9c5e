"""A generic layout: a folder of crops and CSV files that say who is who.

    load_folder(root, csv="crops.csv")                        # one CSV with a split column
    load_folder(root, train="train.csv", query="q.csv", gallery="g.csv")

Rows are path,pid[,camid][,view][,split]: paths relative to `root` (or absolute); pid an integer
or any label (labels are numbered in sorted order when any pid is not an integer); camid an
integer or empty; view a name from VIEW_NAMES (front, rear, left, right, side) or empty; split
train, query, gallery or distractor. A header row naming the columns is optional and, when
present, allows any column order and extra columns. CSV paths may lie outside `root`, so a user
can describe a read-only folder without writing into it.
"""

from __future__ import annotations

import csv as csvlib
from pathlib import Path

from ._io import DataError, FolderIndex, finish, need_dir, need_file, need_image, where
from .types import UNKNOWN, VIEW_NAMES, ReIDDataset, Sample

COLUMNS = ("path", "pid", "camid", "view", "split")
SPLITS = ("train", "query", "gallery", "distractor")


def _rows(path: Path, default_split: str | None) -> list[tuple[int, dict[str, str]]]:
    need_file(path, "a CSV of path,pid[,camid][,view][,split]")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(i, [c.strip() for c in r]) for i, r in enumerate(csvlib.reader(f), 1)
                if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: empty; expected rows of path,pid[,camid][,view][,split]")
    header = [c.lower() for c in rows[0][1]]
    if "path" in header and "pid" in header:
        names, rows = header, rows[1:]
        if not rows:
            raise DataError(f"{path}: a header and no rows; expected at least one row of "
                            f"{','.join(names)}")
    else:
        names = list(COLUMNS)
    out = []
    for line, cols in rows:
        if len(cols) < 2 or not cols[names.index("path")]:
            raise DataError(f"{where(path, line)}: expected path,pid[,camid][,view][,split], "
                            f"got {','.join(cols)!r}")
        row = {n: (cols[i] if i < len(cols) else "") for i, n in enumerate(names)}
        row["split"] = row.get("split") or default_split or ""
        if row["split"] not in SPLITS:
            raise DataError(f"{where(path, line)}: split {row['split']!r}; expected one of "
                            f"{', '.join(SPLITS)} (or give train=/query=/gallery= files)")
        out.append((line, row))
    return out


def _num_views(names: set[str], path) -> int:
    if names & {"left", "right"} and "side" in names:
        raise DataError(f"{path}: views mix left/right with side; expected one encoding")
    return 4 if names & {"left", "right"} else 3 if "side" in names else 2


def load_folder(root, csv=None, train=None, query=None, gallery=None,
                num_views: int | None = None) -> ReIDDataset:
    root = need_dir(Path(root), "a folder of image crops")
    if csv is None and train is None:
        raise ValueError("folder data set: give csv= (with a split column) or "
                         "train=/query=/gallery=")
    files = [(Path(csv), None)] if csv is not None else []
    files += [(Path(f), s) for f, s in ((train, "train"), (query, "query"), (gallery, "gallery"))
              if f is not None]
    rows = [(f, line, row) for f, split in files for line, row in _rows(f, split)]

    pids = [r["pid"] for _, _, r in rows]
    numeric = all(p.lstrip("-").isdigit() for p in pids)
    label_id = {p: i for i, p in enumerate(sorted(set(pids)))}
    views = {r["view"].lower() for _, _, r in rows if r.get("view")}
    unknown = views - {n for names in VIEW_NAMES.values() for n in names}
    if unknown:
        f, line, _ = next(x for x in rows if x[2].get("view", "").lower() in unknown)
        raise DataError(f"{where(f, line)}: view {sorted(unknown)[0]!r}; expected one of "
                        "front, rear, left, right, side or empty")
    nv = num_views or (_num_views(views, files[0][0]) if views else 0)
    index = FolderIndex()
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for f, line, r in rows:
        path = Path(r["path"]) if Path(r["path"]).is_absolute() else root / r["path"]
        cam = r.get("camid", "")
        if cam and not cam.lstrip("-").isdigit():
            raise DataError(f"{where(f, line)}: camid {cam!r}; expected an integer or empty")
        view = r.get("view", "").lower()
        if view and view not in VIEW_NAMES.get(nv, ()):
            raise DataError(f"{where(f, line)}: view {view!r} is not in the {nv}-class encoding "
                            f"{VIEW_NAMES.get(nv)}")
        splits[r["split"]].append(Sample(
            need_image(index, path, f, line),
            int(r["pid"]) if numeric else label_id[r["pid"]],
            int(cam) if cam else UNKNOWN,
            VIEW_NAMES[nv].index(view) if view else UNKNOWN,
        ))
    distractors = [s._replace(pid=UNKNOWN) for s in splits["distractor"]]
    return finish(f"folder-{root.name}", splits["train"], splits["query"], splits["gallery"],
                  distractors, num_views=nv)
