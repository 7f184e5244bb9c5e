"""UAV-VeID (Teng et al. 2021): the paper's own data set, and the layout the generator writes.

    image_train/  images_query_val/  images_gallery_val/  images_query_test/  images_gallery_test/
    train_id_label.txt  val_q_label.txt  val_g_label.txt  test_q_label.txt  test_g_label.txt
    train_view_label(front rear left right).txt     <name> f r l r   (one-hot, training only)
    distractors/                                    unlabelled gallery distractors (optional)

Label lists are '<name> <vehicle id>' per line, names relative to the split folder; copies in
the wild keep them under UAV-labels/ as {train_id,test_query,test_gallery}_label.txt, which are
accepted too. No camera ids: val/test have one gallery image per identity, so every query has
exactly one true match. Lines with id -1 are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._io import (
    DataError,
    FolderIndex,
    finish,
    first_existing,
    name_id_rows,
    need_dir,
    need_image,
    read_rows,
    where,
)
from .types import UNKNOWN, ReIDDataset, Sample

SPLIT_DIRS = {
    "train": "image_train",
    "query_val": "images_query_val",
    "gallery_val": "images_gallery_val",
    "query_test": "images_query_test",
    "gallery_test": "images_gallery_test",
}
LIST_FILES = {  # the names the generator writes (the dataset README's, plus one for train)
    "train": "train_id_label.txt",
    "query_val": "val_q_label.txt",
    "gallery_val": "val_g_label.txt",
    "query_test": "test_q_label.txt",
    "gallery_test": "test_g_label.txt",
}
LIST_CANDIDATES = {  # every naming accepted, first match wins
    "train": ["train_id_label.txt", "train_label.txt", "UAV-labels/train_id_label.txt"],
    "query_val": ["val_q_label.txt", "UAV-labels/val_query_label.txt"],
    "gallery_val": ["val_g_label.txt", "UAV-labels/val_gallery_label.txt"],
    "query_test": ["test_q_label.txt", "UAV-labels/test_query_label.txt"],
    "gallery_test": ["test_g_label.txt", "UAV-labels/test_gallery_label.txt"],
}
VIEW_FILE = "train_view_label(front rear left right).txt"  # columns in VIEW_NAMES[4] order
DISTRACTOR_DIR = "distractors"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _read_split(root: Path, sub: str, index: FolderIndex) -> tuple[list[Sample], dict[str, int]]:
    folder = need_dir(root / SPLIT_DIRS[sub], f"the {sub} images of a UAV-VeID tree")
    listing = first_existing(root, LIST_CANDIDATES[sub], f"the UAV-VeID {sub} label list")
    samples, line_of = [], {}
    for line, name, pid in name_id_rows(listing, "'<image name> <vehicle id>'"):
        if pid == -1:  # unlabelled box
            continue
        samples.append(Sample(need_image(index, folder / name, listing, line), pid))
        line_of[name] = len(samples) - 1
    return samples, line_of


def _read_views(path: Path, train: list[Sample], row_of: dict[str, int]) -> list[Sample]:
    """One-hot rows '<name> f r l r'; an all-zero row leaves the view unknown."""
    train = list(train)
    for line, cols in read_rows(path):
        if len(cols) < 5 or any(c not in ("0", "1") for c in cols[1:5]):
            if line == 1 and not all(c in ("0", "1") for c in cols[1:5]):
                continue  # header row
            raise DataError(f"{where(path, line)}: expected '<name> f r l r' with four 0/1 "
                            f"flags, got {' '.join(cols)!r}")
        flags = [int(c) for c in cols[1:5]]
        if sum(flags) > 1:
            raise DataError(f"{where(path, line)}: {sum(flags)} views set; expected one-hot")
        if cols[0] not in row_of:
            raise DataError(f"{where(path, line)}: {cols[0]} is not in the training list; "
                            "expected views for training images only")
        i = row_of[cols[0]]
        train[i] = train[i]._replace(view=flags.index(1) if sum(flags) else UNKNOWN)
    return train


def load_uav_veid(root, split: str = "val", distractors: bool | int = True) -> ReIDDataset:
    """Train + the `split` ('val' or 'test') query/gallery. `distractors`: True for all images in
    distractors/, an int for the first n in name order, False for none."""
    if split not in ("val", "test"):
        raise ValueError(f"UAV-VeID split must be 'val' or 'test', got {split!r}")
    root = need_dir(Path(root), "a UAV-VeID folder (image_train/, images_query_val/, ...)")
    index = FolderIndex()
    train, row_of = _read_split(root, "train", index)
    query, _ = _read_split(root, f"query_{split}", index)
    gallery, _ = _read_split(root, f"gallery_{split}", index)
    # Each box is in one split, so a name in two split lists is a copying mistake.
    first: dict[str, str] = {}
    for part, samples in (("train", train), ("query", query), ("gallery", gallery)):
        for s in samples:
            other = first.setdefault(Path(s.path).name, part)
            if other != part:
                raise DataError(f"{root}: image name {Path(s.path).name} is in the {other} and "
                                f"the {part} lists; expected every name in one split only")
    for view_file in (root / VIEW_FILE, root / "UAV-labels" / VIEW_FILE):
        if view_file.is_file():
            train = _read_views(view_file, train, row_of)
            break
    extra: list[Sample] = []
    folder = root / DISTRACTOR_DIR
    if distractors is not False and folder.is_dir():
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
        if distractors is not True:
            names = names[: int(distractors)]
        extra = [Sample(str(folder / n), UNKNOWN) for n in names]
    return finish(f"uav_veid-{split}", train, query, gallery, extra, num_views=4)
