"""One description per data set: how it is read, how it is evaluated, what the paper trains it
with. Training, the run cache, the chance levels, the notebooks and the command line ask
`dataset_spec(name)` instead of deciding each rule again.

The reported numbers themselves live in the paper layer; a spec only names the data set whose
reported rows it is compared with (`reported_as`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .folder import load_folder
from .types import ReIDDataset
from .uav_veid import load_uav_veid
from .vehicleid import VEHICLEID_DRAWS, load_vehicleid
from .veri776 import load_veri776
from .veriwild import load_veriwild


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # the config's data.dataset
    display: str  # the name a table or figure prints
    loader: Callable[..., ReIDDataset] | None  # None: generated (data.synthetic_dataset)
    num_views: int | None  # the adversary's view classes (paper Sect. 4.2); None: the data's own
    splits: bool  # a val and a test split (loader argument split=); else one test protocol
    junk: str  # "same_camera": a query's same-id, same-camera gallery images are ignored
    # (where every camera is known); "none": every gallery image counts
    distractors: bool  # a distractor folder that can be added to the gallery (Fig. 8)
    gallery_draws: int  # > 0: the gallery is drawn from the test list this many times, averaged
    random_erasing: bool  # the paper's training augmentation on this data set
    reported_as: str | None  # the data set whose reported rows this one is compared with

    def protocol(self, split: str) -> dict:
        """Loader arguments of `split` ("val" or "test"); data sets without a validation split
        have one test protocol, their loader's default."""
        return {"split": split} if self.splits else {}

    def training_protocol(self, val_split: str | None) -> dict:
        """Loader arguments for training: the train split and the validation split a run logs
        (the test split when it logs none: a copy of UAV-VeID may come without val lists), and
        no distractors, which training never reads."""
        return {"split": val_split or "test", "distractors": False} if self.splits else {}

    def junk_rule(self, camids) -> str:
        """The rank metrics' junk argument for query and gallery cameras `camids` (-1:
        unknown; a folder layout may not give them)."""
        return "same_camera" if self.junk == "same_camera" and -1 not in camids else "none"


_UAV = dict(splits=True, junk="none", distractors=True, gallery_draws=0,
            random_erasing=False, reported_as="uav_veid", num_views=4)

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("synth", "synthetic UAV set", None, **_UAV),
    DatasetSpec("uav_veid", "UAV-VeID", load_uav_veid, **_UAV),
    DatasetSpec("veri776", "VeRi-776", load_veri776, num_views=3,
                splits=False, junk="same_camera", distractors=False, gallery_draws=0,
                random_erasing=True, reported_as="veri776"),
    DatasetSpec("vehicleid", "VehicleID", load_vehicleid, num_views=2,
                splits=False, junk="none", distractors=False, gallery_draws=VEHICLEID_DRAWS,
                random_erasing=True, reported_as="vehicleid"),
    DatasetSpec("veriwild", "VERI-Wild", load_veriwild, num_views=3,
                splits=False, junk="same_camera", distractors=False, gallery_draws=0,
                random_erasing=True, reported_as="veriwild"),
    # a user's crops: views and cameras only where the CSV gives them
    DatasetSpec("folder", "folder of crops", load_folder, num_views=None,
                splits=False, junk="same_camera", distractors=False, gallery_draws=0,
                random_erasing=False, reported_as=None),
)}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


__all__ = ["DATASETS", "DatasetSpec", "dataset_spec"]
