"""Reading users' list files and checking what they say, with errors that name file and line.

Users' files vary: a header row or none, extra columns, Windows line ends. The readers accept all
of these; anything else raises DataError at the boundary, naming the file, the line and what was
expected. Nothing here writes anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .types import UNKNOWN, ReIDDataset, Sample


class DataError(ValueError):
    """A data set on disk does not match its layout."""


def where(path, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: missing folder; expected {what}")
    return path


def need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing file; expected {what}")
    return path


def first_existing(root: Path, candidates: Iterable[str], what: str) -> Path:
    """The first of several accepted names for one file (datasets circulate in variants); when
    none exists, the error names the first, the layout's own name."""
    candidates = list(candidates)
    for name in candidates:
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root / candidates[0]}: missing file; expected {what} (also accepted under "
                    f"{root}: {', '.join(candidates[1:])})")


def read_rows(path: Path, sep: str | None = None) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a text file split on `sep` (whitespace when None), with 1-based
    line numbers. Lines starting with '#' are comments."""
    rows = []
    with open(path, encoding="utf-8-sig") as f:  # utf-8-sig: drop a BOM that editors add
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append((lineno, [c.strip() for c in line.split(sep)]))
    return rows


def parse_int(text: str, path, line: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{where(path, line)}: {what} {text!r} is not an integer") from None


def name_id_rows(path: Path, expected: str) -> list[tuple[int, str, int]]:
    """Lines '<name> <id> [extra columns]' -> (line, name, id). A first line whose id column is
    not a number is taken as a header; any later one is an error."""
    out = []
    for i, (lineno, cols) in enumerate(read_rows(path)):
        if len(cols) < 2:
            raise DataError(f"{where(path, lineno)}: {len(cols)} column(s); expected {expected}")
        if i == 0 and not cols[1].lstrip("-").isdigit():
            continue  # header row
        out.append((lineno, cols[0], parse_int(cols[1], path, lineno, "identity")))
    return out


class FolderIndex:
    """File names per folder, listed once: 300K stat() calls are slow on network disks."""

    def __init__(self) -> None:
        self._names: dict[Path, set[str]] = {}

    def exists(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._names:
            self._names[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        return path.name in self._names[folder]


def need_image(index: FolderIndex, path: Path, listed_in, line: int) -> str:
    if not index.exists(path):
        raise DataError(f"{where(listed_in, line)}: names {path}, which does not exist; "
                        "expected an image file")
    return str(path)


def relabel(samples: list[Sample]) -> list[Sample]:
    """Training pids -> 0..N-1 in sorted order of the original ids (the same in every process)."""
    ids = sorted({s.pid for s in samples})
    new = {pid: i for i, pid in enumerate(ids)}
    return [s._replace(pid=new[s.pid]) for s in samples]


def check_splits(name: str, train: list[Sample], query: list[Sample], gallery: list[Sample],
                 train_ids: list[Sample] | None = None) -> None:
    """No image in two splits; no identity in train and in query/gallery. `train_ids`: the
    training samples with their original ids (before relabelling)."""
    splits = {"train": train, "query": query, "gallery": gallery}
    seen: dict[str, str] = {}
    for split, samples in splits.items():
        for s in samples:
            key = os.path.normcase(os.path.abspath(s.path))
            if key in seen:
                raise DataError(f"{name}: image {s.path} is listed in {seen[key]} and in "
                                f"{split}; expected each image once, in one split")
            seen[key] = split
    original = {s.pid for s in (train_ids if train_ids is not None else train)}
    for split in ("query", "gallery"):
        both = original & {s.pid for s in splits[split] if s.pid != UNKNOWN}
        if both:
            raise DataError(f"{name}: identity {min(both)} is in train and in {split} "
                            f"({len(both)} such ids); expected disjoint identities")


def finish(name: str, train: list[Sample], query: list[Sample], gallery: list[Sample],
           distractors: list[Sample] | None = None, num_views: int = 0) -> ReIDDataset:
    """Check the splits, relabel the training ids and build the data set."""
    check_splits(name, train, query, gallery)
    labelled = num_views if any(s.view != UNKNOWN for s in train) else 0
    return ReIDDataset(name, relabel(train), query, gallery, distractors or [], labelled)
