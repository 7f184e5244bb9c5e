"""Table 1 and Fig. 3: identities, images, images per identity, box sizes and views per split."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .types import UNKNOWN, VIEW_NAMES, ReIDDataset, Sample


def _box_sizes(samples: list[Sample], limit: int) -> np.ndarray:
    """(N, 2) widths and heights from the image headers, of at most `limit` evenly spaced images."""
    step = max(1, len(samples) // limit) if limit else 1
    sizes = []
    for s in samples[::step]:
        with Image.open(s.path) as im:  # reads the header only
            sizes.append(im.size)
    return np.asarray(sizes, dtype=np.int64).reshape(-1, 2)


def dataset_statistics(ds: ReIDDataset, box_sizes: bool = True, max_sized: int = 20000) -> dict:
    """Per split (train, query, gallery, distractors): ids, images, images-per-id summary and
    histogram, box sizes (w, h) and the view histogram by name. `max_sized` bounds how many image
    headers are read per split."""
    names = VIEW_NAMES.get(ds.num_views, ())
    out = {"name": ds.name, "num_views": ds.num_views}
    for split in ("train", "query", "gallery", "distractors"):
        samples = getattr(ds, split)
        per_id = np.bincount(np.unique([s.pid for s in samples if s.pid != UNKNOWN],
                                       return_inverse=True)[1]) if samples else np.zeros(0, int)
        views = {n: sum(s.view == i for s in samples) for i, n in enumerate(names)}
        views["unknown"] = sum(s.view == UNKNOWN for s in samples)
        st = {
            "ids": int(len(per_id)),
            "images": len(samples),
            "images_per_id": {
                "min": int(per_id.min()) if len(per_id) else 0,
                "median": float(np.median(per_id)) if len(per_id) else 0.0,
                "mean": float(per_id.mean()) if len(per_id) else 0.0,
                "max": int(per_id.max()) if len(per_id) else 0,
                "histogram": {int(k): int(v) for k, v in
                              zip(*np.unique(per_id, return_counts=True), strict=True)},
            },
            "views": views,
        }
        if box_sizes and samples:
            wh = _box_sizes(samples, max_sized)
            st["box_sizes"] = wh
            st["box_w"] = {"min": int(wh[:, 0].min()), "median": float(np.median(wh[:, 0])),
                           "max": int(wh[:, 0].max())}
            st["box_h"] = {"min": int(wh[:, 1].min()), "median": float(np.median(wh[:, 1])),
                           "max": int(wh[:, 1].max())}
        out[split] = st
    return out
