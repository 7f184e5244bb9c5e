"""VeRi-776 (Liu et al. 2016): 576 training and 200 test vehicles seen by 20 cameras.

    image_train/  image_query/  image_test/  name_train.txt  name_query.txt  name_test.txt

Names are VVVV_cCCC_TTTTTTTT_F.jpg: vehicle id, camera (1-20), time stamp, frame. The name lists
give the images; where a list is missing, the folder's .jpg files are used. The evaluator
ignores gallery images with the query's id *and* camera (junk).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ._io import DataError, FolderIndex, finish, need_dir, need_image, read_rows, where
from .types import ReIDDataset, Sample

NAME = re.compile(r"^(\d+)_c(\d+)_.+\.(jpg|jpeg|png)$", re.IGNORECASE)
SPLITS = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
LISTS = {"train": "name_train.txt", "query": "name_query.txt", "gallery": "name_test.txt"}


def _parse(name: str, listed_in, line: int | None) -> tuple[int, int]:
    m = NAME.match(name)
    if m is None:
        raise DataError(f"{where(listed_in, line)}: image name {name!r} does not match "
                        "VeRi-776's VVVV_cCCC_TTTTTTTT_F.jpg (vehicle id, camera)")
    return int(m.group(1)), int(m.group(2))


def load_veri776(root) -> ReIDDataset:
    root = need_dir(Path(root), "a VeRi-776 folder (image_train/, image_query/, image_test/)")
    # every folder before any name: another layout's tree fails on the folder it lacks
    folders = {split: need_dir(root / sub, f"the VeRi-776 {split} images")
               for split, sub in SPLITS.items()}
    index = FolderIndex()
    splits = {}
    for split, folder in folders.items():
        listing = root / LISTS[split]
        if listing.is_file():
            rows = [(line, cols[0]) for line, cols in read_rows(listing)]
        else:  # some copies ship without the name lists
            listing = folder
            rows = [(None, n) for n in sorted(os.listdir(folder)) if n.lower().endswith(".jpg")]
        samples = []
        for line, name in rows:
            pid, cam = _parse(name, listing, line)
            path = need_image(index, folder / name, listing, line) if line else str(folder / name)
            samples.append(Sample(path, pid, cam))
        splits[split] = samples
    return finish("veri776", splits["train"], splits["query"], splits["gallery"])
