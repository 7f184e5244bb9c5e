"""Feature extraction, exact rank metrics that scale to 300K distractors, the four protocols,
the distractor curve (Fig. 8) and gallery search.

Metrics follow torchreid / fast-reid: per query, gallery items with the query's pid *and* camera
are junk (dropped) when `junk="same_camera"`; the rest are ranked by distance, ties by gallery
order; CMC@k = a true match within the first k; AP over all true matches; INP = matches / position
of the hardest match. Queries with no true match left are skipped and counted in `num_skipped`.

Ranking is by exact squared Euclidean distance (float64) of the float32 features. No Q x G matrix
is ever held: queries and gallery go in blocks, screened with a bf16 or fp32 matrix product whose
error is bounded, and only items within that bound of a true match are compared more precisely
(see `_rank.py`). Peak extra memory is about `memory_mb` plus a bf16 copy of the gallery.
`metric="cosine"` L2-normalises the features (float32) and ranks by the same distance, which
orders like the cosine distance.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vscr_core import _rank
from vscr_core.data.vehicleid import vehicleid_split
from vscr_core.files import load_tagged, save_tagged

__all__ = [
    "chance_level", "protocol_counts",
    "GalleryIndex",
    "RankMetrics",
    "RankOptions",
    "VehicleIDResult",
    "distractor_curve",
    "evaluate_uav_veid",
    "evaluate_vehicleid",
    "evaluate_veri776",
    "extract_features",
    "rank_metrics",
]

_GALLERY_BLOCK = 65536  # gallery columns per screened block; big enough for an efficient GEMM
_DEFAULT_MEMORY_MB = 256  # working memory of one (query chunk x gallery block) step


@dataclass(frozen=True)
class RankMetrics:
    cmc: np.ndarray  # (max_rank,) cmc[k - 1] = fraction of queries with a true match in the top k
    mAP: float
    mINP: float
    num_queries: int  # queries evaluated
    num_skipped: int  # queries without any true match left in the gallery

    def rank(self, k: int) -> float:
        """CMC at rank k (1-based): rank(1) is rank-1 accuracy."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"k must be in 1..{len(self.cmc)}, got {k}")
        return float(self.cmc[k - 1])

    def as_dict(self) -> dict[str, float | int]:
        ranks = {f"rank{k}": self.rank(k) for k in (1, 5, 10, 20) if k <= len(self.cmc)}
        return {
            **ranks,
            "mAP": self.mAP,
            "mINP": self.mINP,
            "num_queries": self.num_queries,
            "num_skipped": self.num_skipped,
        }


# ---------------------------------------------------------------- input checks (the boundary)


def _feats(x, name: str, dim: int | None = None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
    if len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty, shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has dimension {x.shape[1]}, expected {dim}")
    x = x.detach().to("cpu", torch.float32).contiguous()
    # a finite sum rules out NaN and inf in one fast pass; otherwise look element-wise
    if not (bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _labels(x, name: str, n: int) -> torch.Tensor:
    if x is None:
        raise ValueError(f"{name} is required here")
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(x.shape)}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got {x.dtype}")
    if len(x) != n:
        raise ValueError(f"{name} has {len(x)} entries but the features have {n} rows")
    return x.to("cpu", torch.int64)


def _check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


# ---------------------------------------------------------------- rank metrics


@dataclass(frozen=True)
class RankOptions:
    """How rank_metrics, distractor_curve and the protocols rank (keyword arguments of each)."""

    junk: str = "same_camera"  # "same_camera": same pid and camera as the query is dropped
    metric: str = "euclidean"  # or "cosine": L2-normalised features, the same distance
    max_rank: int = 50  # length of the CMC curve
    chunk_size: int | None = None  # queries at a time; None: from memory_mb
    gallery_chunk_size: int | None = None  # gallery items at a time; None: up to 65,536
    # precision of the first distance pass ("auto", "bf16", "fp32", "fp64"): speed only, never
    # the result
    screen: str = "auto"
    memory_mb: int = _DEFAULT_MEMORY_MB  # working memory of one query x gallery block
    # a progress bar over the queries; None: only for large work (about 5e8 query x gallery
    # pairs and up, runs of seconds or more)
    progress: bool | None = None
    fast: bool | None = None  # the one-match fast path; None: wherever it applies (tests force it)

    def __post_init__(self):
        _check_choice(self.junk, "junk", {"same_camera", "none"})
        _check_choice(self.metric, "metric", {"euclidean", "cosine"})
        _check_choice(self.screen, "screen", set(_rank.SCREENS))
        if not isinstance(self.max_rank, int) or self.max_rank < 1:
            raise ValueError(f"max_rank must be a positive int, got {self.max_rank!r}")
        for name in ("chunk_size", "gallery_chunk_size"):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, int) or val < 1):
                raise ValueError(f"{name} must be a positive int or None, got {val!r}")


def rank_metrics(q_feats, g_feats, q_pids, g_pids, q_camids=None, g_camids=None,
                 **options) -> RankMetrics:
    """CMC (length `max_rank`), mAP, mINP and query counts; exact, in bounded memory.

    q_feats (Q, D), g_feats (G, D): features (torch or numpy, any float dtype).
    q_pids, g_pids, q_camids, g_camids: integer labels; camids are needed for
    `junk="same_camera"`. `options`: the fields of RankOptions (junk, metric, max_rank,
    chunk_size, gallery_chunk_size, screen, memory_mb, progress).
    """
    return _evaluate(q_feats, [g_feats], q_pids, g_pids, q_camids, g_camids, None, **options)[0]


def distractor_curve(
    q_feats,
    g_feats,
    q_pids,
    g_pids,
    distractor_feats,
    counts: Sequence[int],
    *,
    q_camids=None,
    g_camids=None,
    junk: str = "none",
    **options,
) -> dict[int, RankMetrics]:
    """Metrics with the first n distractors added to the gallery, for every n in `counts`
    (Fig. 8), from one pass over the distractors. Distractors are never true matches; the
    gallery order is base gallery, then distractors in the given order (ties follow it).
    Other options: the fields of RankOptions."""
    dist = _feats(distractor_feats, "distractor_feats")
    counts = [int(c) for c in counts]
    if not counts or any(c < 0 or c > len(dist) for c in counts):
        raise ValueError(f"counts must be in 0..{len(dist)} (the distractors given), got {counts}")
    ordered = sorted(set(counts))
    results = _evaluate(
        q_feats, [g_feats, dist[: ordered[-1]]], q_pids, g_pids, q_camids, g_camids, ordered,
        junk=junk, **options,
    )  # fmt: skip
    by_count = dict(zip(ordered, results, strict=True))
    return {c: by_count[c] for c in counts}


def _evaluate(q_feats, g_parts: list, q_pids, g_pids, q_camids, g_camids,
              distractor_counts: list[int] | None, **options) -> list[RankMetrics]:
    o = RankOptions(**options)
    q = _feats(q_feats, "q_feats")
    g = _feats(g_parts[0], "g_feats", q.shape[1])
    parts = [g] + [_feats(p, "distractor_feats", q.shape[1]) for p in g_parts[1:] if len(p)]
    qp, gp = _labels(q_pids, "q_pids", len(q)), _labels(g_pids, "g_pids", len(g))
    qc = gc = None
    if o.junk == "same_camera":
        qc, gc = _labels(q_camids, "q_camids", len(q)), _labels(g_camids, "g_camids", len(g))
    if o.metric == "cosine":
        q, parts = F.normalize(q, dim=1), [F.normalize(p, dim=1) for p in parts]
    gallery = _rank.Gallery(parts)
    boundaries = [len(g) + c for c in (distractor_counts or [0])]
    block = o.gallery_chunk_size or min(_GALLERY_BLOCK, gallery.size)
    per_query = block * 21  # fp32 screened block, mask, and at worst every item a candidate
    chunk = o.chunk_size or max(1, min(len(q), o.memory_mb * 2**20 // per_query))
    counts = _rank.match_counts(
        q, gallery, qp, gp, qc, gc, same_camera_junk=o.junk == "same_camera",
        boundaries=boundaries, chunk_size=chunk, block_cols=block, screen=o.screen, fast=o.fast,
        progress=o.progress,
    )  # fmt: skip
    return [RankMetrics(**m) for m in _rank.metrics_from_counts(counts, o.max_rank)]


# ---------------------------------------------------------------- the protocols


def evaluate_uav_veid(q_feats, g_feats, q_pids, g_pids, *, distractor_feats=None, **options):
    """UAV-VeID val or test: one gallery image per id, no junk rule; optionally with the
    distractor set appended to the gallery. Options: the fields of RankOptions."""
    if distractor_feats is None or len(distractor_feats) == 0:
        return rank_metrics(q_feats, g_feats, q_pids, g_pids, junk="none", **options)
    n = len(distractor_feats)
    return distractor_curve(
        q_feats, g_feats, q_pids, g_pids, distractor_feats, [n], junk="none", **options
    )[n]


def evaluate_veri776(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids, **options):
    """VeRi-776: 1,678 queries against 11,579 gallery images; same-id same-camera junk."""
    return rank_metrics(
        q_feats, g_feats, q_pids, g_pids, q_camids, g_camids, junk="same_camera", **options
    )


@dataclass(frozen=True)
class VehicleIDResult:
    mean: dict[str, float]  # rank1, rank5, rank10, mAP, mINP averaged over the draws
    std: dict[str, float]  # their standard deviation over the draws (ddof=0)
    draws: list[RankMetrics]


def evaluate_vehicleid(feats, pids, *, num_draws: int = 10, seed: int = 0, **options):
    """VehicleID small / medium / large: pass the features and vids of test_list_{800,1600,2400}.
    Each of `num_draws` draws (seeded by (seed, draw index)) puts one random image per id into the
    gallery and the rest into the queries; no junk rule. Returns the mean and std over draws."""
    feats = _feats(feats, "feats")
    pids_t = _labels(pids, "pids", len(feats))
    if not isinstance(num_draws, int) or num_draws < 1:
        raise ValueError(f"num_draws must be a positive int, got {num_draws!r}")
    draws = []
    for d in range(num_draws):
        gi, qi = map(torch.from_numpy, vehicleid_split(pids_t.numpy(), seed, d))
        draws.append(
            rank_metrics(feats[qi], feats[gi], pids_t[qi], pids_t[gi], junk="none", **options)
        )
    keys = [k for k in draws[0].as_dict() if not k.startswith("num_")]
    table = np.array([[m.as_dict()[k] for k in keys] for m in draws])
    return VehicleIDResult(
        dict(zip(keys, table.mean(0).tolist(), strict=True)),
        dict(zip(keys, table.std(0).tolist(), strict=True)),
        draws,
    )


# ---------------------------------------------------------------- feature extraction


def _first(item):
    return item[0] if isinstance(item, (tuple, list)) else item


def extract_features(
    model: Callable[[torch.Tensor], torch.Tensor],
    images,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    *,
    flip: bool = False,
    precision: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """Features (N, D) float32 on the CPU for a Dataset (items: an image tensor, or a tuple whose
    first element is one) or an (N, 3, H, W) tensor.

    `precision`: "auto" (bf16 autocast + channels-last on CPU, fp32 on CUDA), "bf16", "fp16"
    (CUDA only) or "fp32". `flip` averages the features of the image and its mirror. The model is
    put in eval mode (its mode is restored afterwards) and moved to `device`.
    """
    _check_choice(precision, "precision", {"auto", "fp32", "bf16", "fp16"})
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = torch.device(device)
    if precision == "auto":
        precision = "bf16" if device.type == "cpu" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' on the CPU")
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"images must be a float (N, 3, H, W) tensor, got "
                             f"{images.dtype} {tuple(images.shape)}")  # fmt: skip
        batches = images.split(batch_size)
        total = len(batches)
    else:
        batches = torch.utils.data.DataLoader(
            images, batch_size=batch_size, shuffle=False, num_workers=num_workers,
            collate_fn=lambda items: torch.stack([_first(it) for it in items]),
            pin_memory=device.type == "cuda",
        )  # fmt: skip
        total = len(batches)
    if len(images) == 0:
        raise ValueError("images is empty")
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    channels_last = low is not None
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval().to(device, memory_format=memory_format)
    from tqdm.auto import tqdm  # here, not at the top: the core imports without tqdm

    feats = []
    try:
        with torch.inference_mode(), torch.autocast(device.type, low, enabled=low is not None):
            for x in tqdm(batches, total=total, desc="extract", disable=not progress):
                x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                f = model(x)  # (B, D)
                if flip:
                    f = (f.float() + model(x.flip(3)).float()) / 2
                if f.ndim != 2 or len(f) != len(x):
                    raise ValueError(f"model must map (B, 3, H, W) to (B, D); got {tuple(f.shape)}")
                feats.append(f.float().cpu())
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return torch.cat(feats)  # (N, D) float32


# ---------------------------------------------------------------- gallery search

_INDEX_FORMAT = "vscr.GalleryIndex/1"


class GalleryIndex:
    """Nearest gallery items for new queries. `search` returns (indices (Q, k) int64, distances
    (Q, k) float32), nearest first: squared Euclidean distance, or 1 - cosine similarity.

    backend "torch": exact, chunked (ties in any order). backend "faiss": faiss-cpu's flat
    index (exact up to float32 rounding), built on demand; needs `pip install faiss-cpu`.
    """

    def __init__(self, feats, *, metric: str = "euclidean", backend: str = "torch",
                 memory_mb: int = _DEFAULT_MEMORY_MB):  # fmt: skip
        _check_choice(metric, "metric", {"euclidean", "cosine"})
        _check_choice(backend, "backend", {"torch", "faiss"})
        feats = _feats(feats, "feats")
        self.metric, self.backend, self.memory_mb = metric, backend, memory_mb
        self.feats = F.normalize(feats, dim=1) if metric == "cosine" else feats  # (G, D)
        self._sqnorm = self.feats.square().sum(1)  # (G,)
        self._faiss = self._build_faiss() if backend == "faiss" else None

    def __len__(self) -> int:
        return len(self.feats)

    def _build_faiss(self):
        try:
            import faiss
        except ImportError as err:
            raise ImportError(
                "backend='faiss' needs faiss-cpu: pip install faiss-cpu (or .[faiss])"
            ) from err
        dim = self.feats.shape[1]
        index = faiss.IndexFlatIP(dim) if self.metric == "cosine" else faiss.IndexFlatL2(dim)
        index.add(self.feats.numpy())
        return index

    def search(self, query_feats, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        q = _feats(query_feats, "query_feats", self.feats.shape[1])
        if not isinstance(k, int) or not 1 <= k <= len(self):
            raise ValueError(f"k must be an int in 1..{len(self)}, got {k!r}")
        if self.metric == "cosine":
            q = F.normalize(q, dim=1)
        if self._faiss is not None:
            dist, idx = self._faiss.search(q.numpy(), k)
            dist, idx = torch.from_numpy(dist), torch.from_numpy(idx).long()
            return idx, (1 - dist if self.metric == "cosine" else dist)
        block = min(_GALLERY_BLOCK, len(self))
        chunk = max(1, self.memory_mb * 2**20 // (block * 8))
        out_i, out_d = [], []
        for q0 in range(0, len(q), chunk):
            qc = q[q0 : q0 + chunk]
            best_d = torch.empty(len(qc), 0)
            best_i = torch.empty(len(qc), 0, dtype=torch.int64)
            for g0 in range(0, len(self), block):
                g = self.feats[g0 : g0 + block]
                # (Qc, Gb) squared distances, ||q||^2 + ||g||^2 - 2 q.g
                d = torch.addmm(self._sqnorm[g0 : g0 + block][None], qc, g.T, alpha=-2)
                d += qc.square().sum(1, keepdim=True)
                d.clamp_(min=0)
                kk = min(k, d.shape[1])
                bd, bi = d.topk(kk, dim=1, largest=False)
                best_d = torch.cat([best_d, bd], 1)
                best_i = torch.cat([best_i, bi + g0], 1)
                best_d, sel = best_d.topk(min(k, best_d.shape[1]), dim=1, largest=False)
                best_i = best_i.gather(1, sel)
            out_i.append(best_i)
            out_d.append(best_d / 2 if self.metric == "cosine" else best_d)
        return torch.cat(out_i), torch.cat(out_d)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temp file + rename)."""
        save_tagged(path, _INDEX_FORMAT, {"metric": self.metric, "backend": self.backend,
                                          "feats": self.feats})

    @classmethod
    def load(cls, path: str | os.PathLike, *, backend: str | None = None) -> GalleryIndex:
        state = load_tagged(path, _INDEX_FORMAT, "a GalleryIndex file")
        return cls(state["feats"], metric=state["metric"], backend=backend or state["backend"])


# ---------------------------------------------------------------------------------------------
# Chance level: what a random ranking scores under a protocol


def _harmonic(n: np.ndarray) -> np.ndarray:
    """H_n = 1 + 1/2 + ... + 1/n for an integer array (exact sums up to 10^6, else asymptotic)."""
    n = np.asarray(n, dtype=np.int64)
    big = int(n.max()) if n.size else 0
    if big <= 1_000_000:
        table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, big + 1))])
        return table[n]
    nf = n.astype(np.float64)
    return np.log(nf) + np.euler_gamma + 1 / (2 * nf) - 1 / (12 * nf**2)


def chance_level(matches, candidates, ks=(1, 5, 10)) -> dict[str, float]:
    """Expected CMC@k and AP of a uniformly random ranking, averaged over queries (fractions).

    matches[i]: true matches of query i; candidates[i]: the gallery items it is ranked against
    after junk removal (matches included). For one query with m matches among n items:
    CMC@k = 1 - C(n-m, k) / C(n, k) (no match in k draws without replacement), and
    E[AP] = (1/n) [H_n + (m-1)(n-H_n)/(n-1)], H_n the harmonic number: the item at position p
    is a match with probability m/n, and given that, the matches above it number
    (m-1)(p-1)/(n-1) on average, so E[AP] = (1/m) sum_p (m/n) (1 + (m-1)(p-1)/(n-1)) / p.
    With one match among n: CMC@k = k/n and E[AP] = H_n / n.
    """
    m = np.atleast_1d(np.asarray(matches, dtype=np.int64))
    n = np.atleast_1d(np.asarray(candidates, dtype=np.int64))
    if m.shape != n.shape or m.ndim != 1 or m.size == 0:
        raise ValueError(f"matches and candidates must be equal-length non-empty 1-D, got "
                         f"shapes {m.shape} and {n.shape}")
    bad = np.flatnonzero((m < 1) | (m > n))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"query {i}: {m[i]} matches among {n[i]} candidates; expected "
                         "1 <= matches <= candidates")
    for k in ks:
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"ranks must be positive ints, got {k!r}")
    out, miss, done = {}, np.ones(len(m)), 0
    for k in sorted(ks):
        # P(no match in the first k) = prod_{i<k} (n-m-i)/(n-i), 0 once k > n - m
        for i in range(done, k):
            miss *= np.clip(n - m - i, 0, None) / np.maximum(n - i, 1)
        done = k
        out[f"rank{k}"] = float(np.mean(1 - miss))
    out = {f"rank{k}": out[f"rank{k}"] for k in ks}
    h = _harmonic(n)
    extra = np.where(n > 1, (m - 1) * (n - h) / np.maximum(n - 1, 1), 0.0)
    out["mAP"] = float(np.mean((h + extra) / n))
    return out


def protocol_counts(q_pids, g_pids, q_camids=None, g_camids=None, junk: str = "none"):
    """(matches, candidates) per query under the evaluator's rules (evaluate.rank_metrics):
    junk="same_camera" drops gallery items with the query's id and camera; queries left without
    a true match are skipped, as the evaluator skips them."""
    if junk not in ("none", "same_camera"):
        raise ValueError(f"junk must be 'none' or 'same_camera', got {junk!r}")
    qp, gp = np.asarray(q_pids), np.asarray(g_pids)
    ids, g_count = np.unique(gp, return_counts=True)
    idx = np.searchsorted(ids, qp).clip(0, max(len(ids) - 1, 0))
    same = np.where((len(ids) > 0) & (ids[idx] == qp), g_count[idx], 0)
    junked = np.zeros(len(qp), dtype=np.int64)
    if junk == "same_camera":
        if q_camids is None or g_camids is None:
            raise ValueError("junk='same_camera' needs q_camids and g_camids")
        pairs, pair_count = np.unique(np.stack([gp, np.asarray(g_camids)], 1), axis=0,
                                      return_counts=True)
        lookup = {tuple(p): c for p, c in zip(pairs.tolist(), pair_count.tolist(), strict=True)}
        junked = np.array([lookup.get((p, c), 0) for p, c in
                           zip(qp.tolist(), np.asarray(q_camids).tolist(), strict=True)],
                          dtype=np.int64)
    matches = same - junked
    candidates = len(gp) - junked
    keep = matches > 0
    return matches[keep], candidates[keep]
