"""Predicted view labels for data sets that have none (the paper's viewpoint classifier).

The file is a CSV with a header 'path,view,num_views': the image path as the loader gives it,
the view index in VIEW_NAMES[num_views] (-1 for unknown), and the encoding (2, 3 or 4).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ._io import DataError, need_file, where
from .types import UNKNOWN, VIEW_NAMES, ReIDDataset


def read_view_labels(path) -> tuple[dict[str, int], int]:
    path = need_file(Path(path), "a CSV 'path,view,num_views' of predicted views")
    views, encodings = {}, set()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "view", "num_views"} <= set(reader.fieldnames):
            raise DataError(f"{where(path, 1)}: expected the header 'path,view,num_views'")
        for line, row in enumerate(reader, 2):
            try:
                view, n = int(row["view"]), int(row["num_views"])
            except (TypeError, ValueError):
                raise DataError(f"{where(path, line)}: view and num_views must be "
                                "integers") from None
            if n not in VIEW_NAMES or not UNKNOWN <= view < n:
                raise DataError(f"{where(path, line)}: view {view} of {n} classes; expected "
                                "num_views in 2, 3, 4 and 0 <= view < num_views (or -1)")
            views[row["path"]] = view
            encodings.add(n)
    if len(encodings) != 1:
        raise DataError(f"{path}: {len(encodings)} view encodings; expected exactly one")
    return views, encodings.pop()


def with_view_labels(ds: ReIDDataset, path) -> ReIDDataset:
    """A copy of `ds` whose training views come from `path`, which must list every training
    image (a file written for another data set or another root is refused)."""
    views, n = read_view_labels(path)
    missing = next((s.path for s in ds.train if s.path not in views), None)
    if missing is not None:
        raise DataError(f"{path}: no view for the training image {missing} of {ds.name}; was "
                        "the file written for this data set and root? Relabel it with "
                        "`vscr viewpoint label`")
    train = [s._replace(view=views[s.path]) for s in ds.train]
    return ReIDDataset(ds.name, train, ds.query, ds.gallery, ds.distractors, n)
