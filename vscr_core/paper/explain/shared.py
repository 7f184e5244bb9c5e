"""What Sect. 5.5's figures share: the two variants they compare (MODELS, in row order, and their
LABELS), the trained models and the test split a notebook loads, the evaluation's junk rule, the
folder that a table's paths are relative to, and model inputs turned back into images for
display.

    run = NotebookRun("08_retrieval", ...)
    models, ds = trained_models(run), test_data(run)
"""

from __future__ import annotations

import os

import numpy as np
import torch

from vscr_core.data.registry import dataset_spec
from vscr_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vscr_core.data.types import ReIDDataset, Sample

MODELS = ("baseline", "vscr")  # the two variants every figure compares, in row order
LABELS = {"baseline": "baseline", "vscr": "VSCR"}


def trained_models(run, names: tuple[str, ...] = MODELS, progress: bool = True) -> dict:
    """{variant: trained model} for a NotebookRun, seed run.seeds[0] (trained once in
    run.runs_dir, loaded by every later notebook)."""
    return {name: run.trained_model(name, progress=progress) for name in names}


def test_data(run) -> ReIDDataset:
    """The query and gallery of the test split of the run's data set."""
    from vscr_core.train import load_data

    ds = load_data(run.config, **dataset_spec(run.dataset).protocol("test"))
    if not ds.query or not ds.gallery:
        raise ValueError(f"{ds.name}: the test split needs queries and a gallery; got "
                         f"{len(ds.query)} queries and {len(ds.gallery)} gallery images")
    return ds


def junk_rule(dataset: str, ds: ReIDDataset) -> str:
    """The evaluation's junk rule for `ds` (as experiments.evaluate_model): the data set's rule,
    where the cameras of its queries and gallery are known."""
    return dataset_spec(dataset).junk_rule([s.camid for s in ds.query + ds.gallery])


def display_image(x: torch.Tensor) -> np.ndarray:
    """An ImageNet-normalised (3, H, W) input tensor as an (H, W, 3) float image in [0, 1]."""
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(x.shape)}")
    img = x.detach().float().cpu() * IMAGENET_STD + IMAGENET_MEAN
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def common_root(samples: list[Sample]) -> str:
    """The deepest folder holding every sample: tables store paths relative to it."""
    return os.path.commonpath([os.path.dirname(os.path.abspath(s.path)) for s in samples])


__all__ = [
    "LABELS", "MODELS", "common_root", "display_image", "junk_rule", "test_data", "trained_models",
]
