"""Data sets as lists of (path, pid, camid, view), one loader per on-disk layout.

    load_dataset("uav_veid", root, split="val")      # or "test"; distractors=True|False|n
    load_dataset("veri776", root)
    load_dataset("vehicleid", root, test_size=2400, draw=0)   # draws 0..9, seeded
    load_dataset("veriwild", root, subset="small")   # small | medium | large
    load_dataset("folder", root, csv="crops.csv")    # path,pid[,camid][,view][,split]
    synthetic_dataset("quick", seed=0)               # generated on first use, cached under data/
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vscr_core.files import REPO_ROOT

from ._io import DataError
from .folder import load_folder
from .registry import DATASETS, DatasetSpec, dataset_spec
from .stats import dataset_statistics
from .synth import INFO_FILE, SYNTH_PRESETS, generate_dataset, is_complete
from .types import (
    UNKNOWN,
    VIEW_NAMES,
    ReIDDataset,
    Sample,
    flip_view,
    merge_view,
)
from .uav_veid import load_uav_veid
from .vehicleid import VEHICLEID_DRAWS, load_vehicleid
from .veri776 import load_veri776
from .veriwild import load_veriwild
from .views import with_view_labels


def load_dataset(name: str, root, **protocol) -> ReIDDataset:
    """Read the data set `name` from `root`; `protocol` goes to its loader (see module doc)."""
    spec = dataset_spec(name)
    if spec.loader is None:
        raise ValueError(f"data set {name!r} is generated, not read: use synthetic_dataset()")
    return spec.loader(root, **protocol)


def synthetic_root(preset: str = "quick", seed: int = 0, num_distractors: int | None = None
                   ) -> Path:
    """The synthetic tree's cache: $VSCR_DATA (default <repo>/data) / synth-<preset>-s<seed>,
    with -d<n> for another distractor count than the preset's."""
    base = Path(os.environ.get("VSCR_DATA", REPO_ROOT / "data"))
    extra = "" if num_distractors is None else f"-d{num_distractors}"
    return base / f"synth-{preset}-s{seed}{extra}"


def synthetic_dataset(preset: str = "quick", seed: int = 0, root=None, split: str = "val",
                      distractors: bool | int = True, num_distractors: int | None = None,
                      progress: bool = True) -> ReIDDataset:
    """The synthetic UAV data set, generated into `root` if absent, read like UAV-VeID (`split`,
    `distractors` as in load_uav_veid). `num_distractors` generates another number of
    distractors than the preset's; every other image, and the distractors both trees have, are
    the same bytes, so models trained on one tree are evaluated on the other. The default root,
    synthetic_root(), is a cache: a tree there from an older generator version is rebuilt."""
    default = root is None
    root = synthetic_root(preset, seed, num_distractors) if default else Path(root)
    if not is_complete(root, preset, seed, num_distractors):
        if default and (root / INFO_FILE).is_file():
            shutil.rmtree(root)  # our own cache, from an older generator version: rebuild it
        if root.exists():
            raise DataError(f"{root}: exists but is not a finished synthetic tree of preset "
                            f"{preset!r}, seed {seed}; delete it or choose another root")
        root.parent.mkdir(parents=True, exist_ok=True)
        generate_dataset(root, preset=preset, seed=seed, num_distractors=num_distractors,
                         progress=progress)
    ds = load_uav_veid(root, split=split, distractors=distractors)
    ds.name = f"synth-{preset}-s{seed}-{split}"
    return ds


__all__ = [
    "DATASETS", "DataError", "DatasetSpec", "ReIDDataset", "SYNTH_PRESETS", "Sample", "UNKNOWN",
    "VEHICLEID_DRAWS", "VIEW_NAMES", "dataset_spec", "dataset_statistics", "flip_view",
    "generate_dataset", "load_dataset", "load_folder", "load_uav_veid", "load_vehicleid",
    "load_veri776", "load_veriwild", "merge_view", "synthetic_dataset", "synthetic_root",
    "with_view_labels",
]
