"""VehicleID (Liu et al. 2016): ~26K vehicles, front or rear views from surveillance cameras.

    image/<name>.jpg   train_test_split/train_list.txt   test_list_{800,1600,2400}.txt

Lines are '<name> <vehicle id>' (name with or without .jpg). The test protocol: one random image
per vehicle is the gallery, all others are queries, repeated over VEHICLEID_DRAWS draws and
averaged. `draw` d picks the gallery with `vehicleid_split(pids, seed=0, draw=d)`, the function
`evaluate.evaluate_vehicleid` uses too; query and gallery together are always the whole test
list, so an evaluator can extract features once, in path order, and redo every draw on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._io import FolderIndex, finish, name_id_rows, need_dir, need_file, need_image
from .types import ReIDDataset, Sample

TEST_SIZES = (800, 1600, 2400)
VEHICLEID_DRAWS = 10  # the protocol's repetitions


def _read(root: Path, listing: Path, index: FolderIndex) -> list[Sample]:
    need_file(listing, "a VehicleID list of '<image name> <vehicle id>' lines")
    out = []
    for line, name, vid in name_id_rows(listing, "'<image name> <vehicle id>'"):
        name = name if "." in name else f"{name}.jpg"
        out.append(Sample(need_image(index, root / "image" / name, listing, line), vid))
    return out


def vehicleid_split(pids, seed: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
    """One gallery draw over a test list: (gallery indices, query indices). One random image per
    id goes into the gallery (ordered by id), the rest are queries; seeded by (seed, draw). The
    loader and `evaluate.evaluate_vehicleid` both use it, so draw d is the same split in both."""
    pids = np.asarray(pids)
    rng = np.random.default_rng([seed, draw])
    perm = rng.permutation(len(pids))
    _, first = np.unique(pids[perm], return_index=True)
    gallery = perm[first]
    is_query = np.ones(len(pids), dtype=bool)
    is_query[gallery] = False
    return gallery, np.flatnonzero(is_query)


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
    # path order, so a draw depends on the list's contents only (evaluate_model sorts alike)
    test = sorted(_read(root, split / f"test_list_{test_size}.txt", index))
    gallery, query = vehicleid_split([s.pid for s in test], seed=0, draw=draw)
    query, gallery = [test[i] for i in query], [test[i] for i in gallery]
    return finish(f"vehicleid-{test_size}-d{draw}", train, query, gallery)
