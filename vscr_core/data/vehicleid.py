"""VehicleID (Liu et al. 2016): ~26K vehicles, front or rear views from surveillance cameras.

    image/<name>.jpg   train_test_split/train_list.txt   test_list_{800,1600,2400}.txt

Lines are '<name> <vehicle id>' (name with or without .jpg). The test protocol: one random image
per vehicle is the gallery, all others are queries, repeated over VEHICLEID_DRAWS draws and
averaged. `draw` d picks the gallery with a generator seeded by (test_size, d), so draw d is the
same everywhere; query and gallery together are always the whole test list, so an evaluator can
extract features once and rebuild each draw's split from the image paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._io import FolderIndex, finish, name_id_rows, need_dir, need_file, need_image
from .types import ReIDDataset, Sample

TEST_SIZES = (800, 1600, 2400)
VEHICLEID_DRAWS = 10  # the protocol's repetitions


def _read(root: Path, listing: Path, index: FolderIndex) -> list[Sample]:
    need_file(listing, "a list of '<image name> <vehicle id>' lines")
    out = []
    for line, name, vid in name_id_rows(listing, "'<image name> <vehicle id>'"):
        name = name if "." in name else f"{name}.jpg"
        out.append(Sample(need_image(index, root / "image" / name, listing, line), vid))
    return out


def gallery_draw(test: list[Sample], test_size: int,
                 draw: int) -> tuple[list[Sample], list[Sample]]:
    """(query, gallery): one image per vehicle into the gallery, chosen by (test_size, draw)."""
    rng = np.random.default_rng([test_size, draw])
    by_id: dict[int, list[int]] = {}
    for i, s in enumerate(test):
        by_id.setdefault(s.pid, []).append(i)
    chosen = {ids[rng.integers(len(ids))] for _, ids in sorted(by_id.items())}
    query = [s for i, s in enumerate(test) if i not in chosen]
    gallery = [test[i] for i in sorted(chosen)]
    return query, gallery


def load_vehicleid(root, test_size: int = 2400, draw: int = 0) -> ReIDDataset:
    if test_size not in TEST_SIZES:
        raise ValueError(f"VehicleID test_size must be one of {TEST_SIZES}, got {test_size}")
    if not 0 <= draw < VEHICLEID_DRAWS:
        raise ValueError(f"VehicleID draw must be in 0..{VEHICLEID_DRAWS - 1}, got {draw}")
    root = need_dir(Path(root), "a VehicleID folder (image/, train_test_split/)")
    need_dir(root / "image", "the VehicleID images")
    split = need_dir(root / "train_test_split", "the VehicleID list files")
    index = FolderIndex()
    train = _read(root, split / "train_list.txt", index)
    test = _read(root, split / f"test_list_{test_size}.txt", index)
    query, gallery = gallery_draw(test, test_size, draw)
    return finish(f"vehicleid-{test_size}-d{draw}", train, query, gallery)
