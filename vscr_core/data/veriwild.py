"""VERI-Wild (Lou et al. 2019): 40,671 vehicles from 174 city cameras.

    images/<vid>/<img>.jpg
    train_test_split/train_list.txt, test_{3000,5000,10000}.txt, test_{...}_query.txt  ('vid/img')
    vehicle_info.txt   'id/image;camera;...' (';'-separated, header row optional)

Subsets small / medium / large are the 3,000 / 5,000 / 10,000-id test lists; test_N.txt is the
gallery (entries also in the query list are dropped from it) and test_N_query.txt the queries.
Junk rule at evaluation: same id and same camera.
"""

from __future__ import annotations

from pathlib import Path

from ._io import DataError, FolderIndex, finish, need_dir, need_file, need_image, read_rows, where
from .types import ReIDDataset, Sample

SUBSETS = {"small": 3000, "medium": 5000, "large": 10000}


def _cameras(path: Path) -> dict[str, int]:
    """'vid/img' -> camera, from vehicle_info.txt."""
    need_file(path, "VERI-Wild's cameras, rows 'id/image;camera;...'")
    cams = {}
    for i, (line, cols) in enumerate(read_rows(path, sep=";")):
        if len(cols) < 2 or "/" not in cols[0] or not cols[1].isdigit():
            if i == 0:
                continue  # header row
            raise DataError(f"{where(path, line)}: expected 'vid/image;camera;...', "
                            f"got {';'.join(cols)!r}")
        cams[cols[0].rsplit(".", 1)[0]] = int(cols[1])
    return cams


def _read(root: Path, listing: Path, cams: dict[str, int], index: FolderIndex) -> list[Sample]:
    need_file(listing, "a VERI-Wild list of rows 'vid/image'")
    out = []
    for line, cols in read_rows(listing):
        key = cols[0].rsplit(".", 1)[0]
        vid = key.split("/")[0]
        if "/" not in key or not vid.isdigit():
            raise DataError(f"{where(listing, line)}: expected 'vid/image', got {cols[0]!r}")
        if key not in cams:
            raise DataError(f"{where(listing, line)}: {key} has no camera in vehicle_info.txt")
        path = need_image(index, root / "images" / f"{key}.jpg", listing, line)
        out.append(Sample(path, int(vid), cams[key]))
    return out


def load_veriwild(root, subset: str = "small") -> ReIDDataset:
    if subset not in SUBSETS:
        raise ValueError(f"VERI-Wild subset must be one of {list(SUBSETS)}, got {subset!r}")
    root = need_dir(Path(root), "a VERI-Wild folder (images/, train_test_split/)")
    need_dir(root / "images", "the VERI-Wild images")
    split = need_dir(root / "train_test_split", "the VERI-Wild list files")
    cams = _cameras(root / "train_test_split" / "vehicle_info.txt"
                    if (root / "train_test_split" / "vehicle_info.txt").is_file()
                    else root / "vehicle_info.txt")
    index = FolderIndex()
    n = SUBSETS[subset]
    train = _read(root, split / "train_list.txt", cams, index)
    query = _read(root, split / f"test_{n}_query.txt", cams, index)
    in_query = {s.path for s in query}
    gallery = [s for s in _read(root, split / f"test_{n}.txt", cams, index)
               if s.path not in in_query]
    return finish(f"veriwild-{subset}", train, query, gallery)
