"""The small types every loader returns, and the view label conventions.

Views are indices into VIEW_NAMES[n]: the 4-class UAV-VeID encoding (front, rear, left, right),
or the 3-class (front, side, rear; VeRi-776, VERI-Wild) and 2-class (front, rear; VehicleID)
encodings the paper uses for the other data sets (Sect. 5.2.1). Finer labels merge into coarser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

VIEW_NAMES: dict[int, tuple[str, ...]] = {
    4: ("front", "rear", "left", "right"),
    3: ("front", "side", "rear"),
    2: ("front", "rear"),
}
UNKNOWN = -1  # pid, camid or view that a data set does not give

# Coarser encodings lump views together; a side view says nothing about front vs rear, so the
# 2-class encoding has no counterpart for it and the adversary ignores such images.
_COARSE_NAME = {"left": "side", "right": "side"}


def _merge_table(from_views: int, to_views: int) -> tuple[int, ...]:
    names = VIEW_NAMES[to_views]
    out = []
    for name in VIEW_NAMES[from_views]:
        name = name if name in names else _COARSE_NAME.get(name, name)
        out.append(names.index(name) if name in names else UNKNOWN)
    return tuple(out)


class Sample(NamedTuple):
    path: str
    pid: int
    camid: int = UNKNOWN
    view: int = UNKNOWN  # index into VIEW_NAMES[dataset.num_views]


def merge_view(view: int, from_views: int, to_views: int) -> int:
    """Map a view index between encodings, e.g. 4 -> 3 (left, right -> side) or 3 -> 2."""
    for n in (from_views, to_views):
        if n not in VIEW_NAMES:
            raise ValueError(f"number of view classes must be 2, 3 or 4, got {n}")
    if to_views > from_views:
        raise ValueError(f"cannot refine {from_views} view classes into {to_views}")
    return UNKNOWN if view == UNKNOWN else _merge_table(from_views, to_views)[view]


def flip_view(view: int, num_views: int) -> int:
    """The view label after a horizontal flip: left and right swap, the rest stay."""
    names = VIEW_NAMES[num_views]
    if view == UNKNOWN or names[view] not in ("left", "right"):
        return view
    return names.index("right" if names[view] == "left" else "left")


@dataclass
class ReIDDataset:
    """A data set as lists of samples. Training pids are relabelled 0..N-1 from a sorted list."""

    name: str
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    # Distractor gallery images (UAV-VeID's distractor set); pid UNKNOWN, never a true match.
    distractors: list[Sample] = field(default_factory=list)
    # Number of view classes labelled in `train` (0 when the data set has no view labels).
    num_views: int = 0

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})
