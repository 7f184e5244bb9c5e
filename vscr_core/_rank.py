"""The exact rank engine behind `vscr_core.evaluate.rank_metrics` (private).

For every query and every true match j of it, the metrics need only c_j: how many non-junk,
non-matching gallery items come before j when the gallery is sorted by distance (ties by gallery
order). With the matches' counts sorted, the k-th match (0-based) sits at position k + c_(k), which
gives CMC, AP and INP without sorting any gallery row.

Distances are screened with a matrix product (bf16 or fp32) whose error is bounded rigorously per
query row (`_ScreenBound`): an item clearly closer or clearly farther than a match is decided by
the screen; items within the error band of a match get an fp32 pair distance with its own bound,
and only the still undecided (in practice exact ties) an exact float64 distance. The result is the
ranking by exact squared Euclidean distance, whatever the screening precision. Each comparison
carries both errors: the item's (its block's bound) and the match's (its own norms, wherever the
match lies). Features whose squares would leave float32's range (norms beyond 2^60) are screened
scaled by a power of two (`screen_scale`); exact distances always come from the features as given.

bf16 runs about 2-3x faster than fp32 here but its band is ~100x wider. With screen="auto":
one-true-match queries (UAV-VeID, VehicleID) are screened in bf16 and a row whose band is crowded
is re-screened in fp32 for that block; the general path screens in fp32 when queries have many
true matches (VeRi-776: ~55, whose bands would cover most items between the first and the last
match), otherwise it tries bf16 on a small probe chunk and switches to fp32 when the band would
cost more than the fp32 product. The fp32 product goes through oneDNN where available (about
1.7x MKL's sgemm on this CPU) and, on the general path, in query chunks whose screened block
stays in cache (large fresh allocations cost page faults here). Only the products use the
caller's threads; everything else runs on one (`_threads`).

The gallery is walked in blocks of columns that never straddle a segment boundary, so counts can be
kept per segment: the distractor curve adds distractors as segments 1..S and reads every prefix
from one pass.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

SCREENS = ("auto", "bf16", "fp32", "fp64")
_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}
_UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}
_PAIR_CHUNK = 128  # pairs per exact-distance gather: 512 KB of float64 rows at 512-D stay in L2
_CACHE_ELEMS = 2**22  # screened block elements of a general-path chunk (16 MB of fp32)
_ROW_CHUNK = 2048  # rows per norm computation: float64 temporaries that stay in cache
_EXACT_PAIR_S = 1e-6  # cost of settling one band item (fp32 pair, rarely exact), 512-D
_GEMM_S_PER_MAC = 1e-11  # ~100 GFLOP/s float32 on 2 cores
_RESCUE_SWITCH = 0.5  # rescued share of a chunk beyond which bf16 + fp32 costs more than fp32
_PROBE = 256  # queries in the first chunk when the screen is chosen automatically
_INF = float("inf")
_PROGRESS_PAIRS = 5 * 10**8  # query x gallery pairs from which progress=None shows a bar
_DENSE = 4  # true matches per query beyond which the general path screens in fp32 directly
_MAX_NORM = 2.0**60  # largest feature norm the screen takes unscaled: |v| <= 2^122 < 2^128
_MIN_NORM = 2.0**-40  # below it (all norms) distances fall under the bound's absolute floor


@contextmanager
def _threads(n: int):
    """torch's intra-op threads set to n for a while. The ranking runs its many small operations
    on one thread and only the products and whole-block passes on the caller's: every
    multi-threaded operation waits for all its threads, and beside a busy process a waiting
    thread costs a scheduler slice (milliseconds), which made VeRi size 30x slower on 2 threads
    than on 1."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _row_norms(x: torch.Tensor) -> torch.Tensor:
    """||x|| per row, float64 sums (the fp32 screen's band is then set by the product alone)."""
    norm = torch.empty(len(x), dtype=torch.float64)
    for i in range(0, len(x), _ROW_CHUNK):
        norm[i : i + _ROW_CHUNK] = torch.linalg.vector_norm(x[i : i + _ROW_CHUNK].double(), dim=1)
    return norm


def screen_scale(max_norm: float) -> float:
    """The power of two the screen multiplies the features by: 1 unless the largest norm lies
    outside [2^-40, 2^60]. Beyond 2^60 the screen's squared norms and products (up to
    (|q| + |g|)^2) would near float32's 2^128 (norms of 1e19 give rank-1 = mAP = 1); below 2^-40
    every distance would sit inside the bound's absolute floor and be settled exactly, slowly.
    The ranking is that of the unscaled features: exact distances never use the scaled copies,
    and what scaling loses to underflow is part of each row's rounding residual."""
    if max_norm > _MAX_NORM:
        return 2.0 ** (math.log2(_MAX_NORM) - math.ceil(math.log2(max_norm)))
    if 0 < max_norm < _MIN_NORM:
        return 2.0 ** -math.floor(math.log2(max_norm))  # the largest norm into [1, 2)
    return 1.0


def exact_sqdist(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Exact squared Euclidean distance of paired rows, float64, (P,). The one definition of
    distance that every ranking decision falls back on (the tests' reference uses it too)."""
    return (q.double() - g).square_().sum(-1)  # g promoted to float64 exactly


@dataclass
class Gallery:
    """Gallery features as parts (base gallery, distractors) that are never concatenated."""

    parts: list[torch.Tensor]  # each (G_i, D) float32

    def __post_init__(self):
        self.offsets = np.concatenate([[0], np.cumsum([len(p) for p in self.parts])]).tolist()
        self.size = self.offsets[-1]
        self.base = len(self.parts[0])  # the part with pids; the rest are distractors

    def rows(self, cols: torch.Tensor) -> torch.Tensor:
        """Float32 gallery rows for global column indices, (len(cols), D)."""
        if len(self.parts) == 1:
            return self.parts[0].index_select(0, cols)
        out = torch.empty(len(cols), self.parts[0].shape[1])
        which = torch.bucketize(cols, torch.tensor(self.offsets[1:-1]), right=True)
        for i, part in enumerate(self.parts):
            idx = (which == i).nonzero().squeeze(1)
            out.index_copy_(0, idx, part.index_select(0, cols[idx] - self.offsets[i]))
        return out

    def blocks(self, boundaries: list[int], block_cols: int) -> Iterator[tuple[int, int, int, int]]:
        """(part, start, stop, segment): column blocks of one part and one segment each."""
        cuts = sorted(set(boundaries) | set(self.offsets))
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            part = int(np.searchsorted(self.offsets, a, side="right")) - 1
            seg = int(np.searchsorted(boundaries, a, side="right"))
            for start in range(a, b, block_cols):
                yield part, start, min(b, start + block_cols), seg

    def sqdist(self, q: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Exact distances of (query row, gallery column) pairs, (P,) float64."""
        out = torch.empty(len(rows), dtype=torch.float64)
        for i in range(0, len(rows), _PAIR_CHUNK):
            sl = slice(i, i + _PAIR_CHUNK)
            # exact_sqdist, in place (several times faster, the same float64 operations)
            d = q.index_select(0, rows[sl]).double()
            d.sub_(self.rows(cols[sl]).double())
            out[sl] = d.square_().sum(-1)
        return out


class _ScreenBound:
    """Rigorous per-row bound E on |screened distance - exact distance|.

    The screen computes v = ||g||^2 - 2 <low(q), low(g)> with inputs rounded to the screening
    dtype (error <= |q| r_g + r_q |g| + r_q r_g, r = rounding residual norm), accumulation in
    fp32 or wider (gamma_D), the bias ||g||^2 and the output rounded to the screening dtype, and
    the comparison done in float32 or wider; norms computed in float64.
    """

    def __init__(self, screen: torch.dtype, dim: int, augmented: bool):
        self.augmented = augmented
        self.u = _UNIT_ROUNDOFF[screen]
        u_acc = min(self.u, 2.0**-24)  # bf16 products accumulate in fp32
        self.gamma = dim * u_acc / (1 - dim * u_acc)
        self.u_cmp = u_acc
        self.gamma64 = dim * 2.0**-53 / (1 - dim * 2.0**-53)  # the norms are float64 sums

    def __call__(self, nq, rq, ng, rg) -> torch.Tensor:
        """nq, rq: (n,) float64; ng, rg: scalars (block maxima). Returns (n,) float64."""
        nq_, ng_ = nq + rq, ng + rg
        dot_in = nq * rg + rq * ng + rq * rg
        dot_acc = self.gamma * nq_ * ng_
        if self.augmented:  # bias inside the product as hi + lo; output rounding per element
            out = (self.gamma * (1 + self.u) + 2 * self.u**2) * ng**2
        else:
            out = self.u * (ng**2 + 2 * (1 + self.gamma) * nq_ * ng_) * (1 + self.u)
            out += self.u * ng**2
        cmp = 8 * self.u_cmp * (nq + ng) ** 2
        norms = 3 * self.gamma64 * (nq_**2 + ng_**2)
        return (2 * (dot_in + dot_acc) + out + cmp + norms) * (1 + 1e-3) + 1e-30


class Screen:
    """One screening precision: low-precision copies of queries and gallery, and the bound.

    bf16 carries ||g||^2 inside the product, as two bf16 columns (hi + lo) against constant query
    columns, so the bias is accumulated in fp32 rather than rounded to bf16; the rounding of the
    bf16 output is bounded per element (`u_out` |v|) instead of per row, which makes the band
    several times narrower than a row-wide bound on |v|."""

    def __init__(self, name: str, q: torch.Tensor, gallery: Gallery, nq, ng, scale: float,
                 threads: int):  # fmt: skip
        """nq (Q,), ng (G,): float64 norms of the unscaled features; `scale` (`screen_scale`);
        `threads` for the products (`_threads`)."""
        self.threads = threads
        self.dtype = _DTYPES[name]
        self.scale = scale
        self.sq_scale = scale * scale  # screened distances are exact ones times this (a power of 2)
        self.augmented = self.dtype == torch.bfloat16
        u = _UNIT_ROUNDOFF[self.dtype]  # the bf16 output is rounded to nearest (vcvtneps2bf16)
        self.u_out = u / (1 - u) if self.augmented else 0.0
        self.bound = _ScreenBound(self.dtype, q.shape[1], self.augmented)
        self.q = self.low(q)  # (Q, D); no copy for fp32 unscaled
        self.nq, self.rq = nq * scale, self._residuals(q, self.q)
        self.parts = [self.low(p) for p in gallery.parts]
        self.ng = ng * scale  # (G,) float64
        pairs = list(zip(gallery.parts, self.parts, strict=True))
        self.rg = torch.cat([self._residuals(p, lo) for p, lo in pairs])
        self.offsets = gallery.offsets
        sq = [self.ng[a:b].square() for a, b in itertools.pairwise(self.offsets)]  # per part
        if self.augmented:
            dim = -(-(q.shape[1] + 2) // 16) * 16  # room for the two bias columns, aligned
            self.qa = F.pad(-2 * self.q, (0, dim - q.shape[1]))  # (Q, dim) [-2q, 1, 1, 0...]
            self.qa[:, q.shape[1] : q.shape[1] + 2] = 1
            self.ga = []
            for n2, low in zip(sq, self.parts, strict=True):
                hi = n2.to(self.dtype)
                lo = (n2 - hi.double()).to(self.dtype)
                ga = F.pad(low, (0, dim - q.shape[1]))  # (G_i, dim) [g, hi, lo, 0...]
                ga[:, q.shape[1]], ga[:, q.shape[1] + 1] = hi, lo
                self.ga.append(ga)
            self.parts = None  # the augmented copies replace the plain ones
        else:
            self.bias = [n2.to(self.dtype) for n2 in sq]  # (G_i,)
            # fp32 through oneDNN (about 1.7x MKL's sgemm on this CPU): (-2q) g^T, then + bias
            self.onednn = self.dtype == torch.float32 and _onednn_ok()
            self.q2 = -2 * self.q if self.onednn else None

    def low(self, x: torch.Tensor) -> torch.Tensor:
        """The screen's copy of float32 rows: scaled, in the screening dtype."""
        if self.scale == 1:
            return x.to(self.dtype)  # x itself for fp32
        return (x.double() * self.scale).to(self.dtype)  # exact product, rounded once

    def _residuals(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """||scale x - low|| per row (float64): the rounding (and any underflow) of the copy."""
        out = torch.zeros(len(x), dtype=torch.float64)
        if low is x:
            return out
        for i in range(0, len(x), _ROW_CHUNK):
            sl = slice(i, i + _ROW_CHUNK)
            if self.scale == 1:  # x - low is exact in float32; squared in float64, no underflow
                d = x[sl] - low[sl].float()
            else:
                d = x[sl].double().mul_(self.scale).sub_(low[sl].double())
            out[sl] = torch.linalg.vector_norm(d, dim=1, dtype=torch.float64)
        return out

    def block(self, qi: torch.Tensor, part: int, c0: int, c1: int):
        """Screened v = ||g||^2 - 2<q, g> (len(qi), c1 - c0), so that d~ = ||q||^2 + v, and the
        per-row error bound E (len(qi),) float64 of d~ (plus `u_out` |v| per element)."""
        a, b = c0 - self.offsets[part], c1 - self.offsets[part]
        with _threads(self.threads):
            v = self._product(qi, part, a, b)
        return v, self.bound(self.nq[qi], self.rq[qi], self.ng[c0:c1].max(), self.rg[c0:c1].max())

    def _product(self, qi, part: int, a: int, b: int) -> torch.Tensor:
        if self.augmented:
            return torch.mm(self.qa[qi], self.ga[part][a:b].T)
        if self.onednn:
            try:
                # the bias in the same call: no second pass over the block
                return _LINEAR(self.q2[qi], self.parts[part][a:b], self.bias[part][a:b], "none",
                               [], "")  # fmt: skip
            except RuntimeError:
                self.onednn = False
        return torch.addmm(self.bias[part][None, a:b], self.q[qi], self.parts[part][a:b].T,
                           alpha=-2)  # fmt: skip

    def pairs(self, qi: torch.Tensor, cols: torch.Tensor, gallery: Gallery) -> torch.Tensor:
        """Screened distances d~ of (query, column) pairs (P,) float64, within the same bound."""
        acc = torch.float64 if self.dtype == torch.float64 else torch.float32
        out = torch.empty(len(qi), dtype=torch.float64)
        for i in range(0, len(qi), _PAIR_CHUNK):
            sl = slice(i, i + _PAIR_CHUNK)
            g = self.low(gallery.rows(cols[sl])).to(acc)
            dot = (self.q[qi[sl]].to(acc) * g).sum(1).double()
            out[sl] = self.ng[cols[sl]].square() - 2 * dot + self.nq[qi[sl]].square()
        return out


_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def _onednn_ok() -> bool:
    """Whether oneDNN's fp32 linear is there and computes in fp32 (not an implicit bf16/tf32
    down-conversion, which the screen's bound would not cover)."""
    if _LINEAR is None or not torch.backends.mkldnn.is_available():
        return False
    if os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE", "strict").lower() not in ("strict", ""):
        return False  # bf16, f16, tf32 or any: implicit down-conversion allowed
    modes = [torch.get_float32_matmul_precision()]
    for backend in (torch.backends.mkldnn, getattr(torch.backends.mkldnn, "matmul", None)):
        modes.append(getattr(backend, "fp32_precision", "none"))
    return all(m in ("highest", "ieee", "none") for m in modes)


def _round(x: torch.Tensor, dtype: torch.dtype, up: bool) -> torch.Tensor:
    """Cast float64 to dtype rounding up or down, so that a screening threshold never shrinks."""
    y = x.to(dtype)
    direction = torch.full_like(y, _INF if up else -_INF)
    off = (y.double() < x) if up else (y.double() > x)
    return torch.where(off, torch.nextafter(y, direction), y)


def _key(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Int64 keys ordered by (row, float32 value): the float bits made sortable as integers,
    in [-2^31, 2^31), plus row * 2^32."""
    bits = values.contiguous().view(torch.int32).long()
    bits ^= (bits >> 31) & 0x7FFFFFFF  # negative floats: reverse their order
    return bits.add_(rows, alpha=2**32)


def _flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices of the True entries of a contiguous mask, (n,) int64: numpy's, several times
    faster than torch's nonzero on sparse masks here."""
    return torch.from_numpy(np.flatnonzero(mask.numpy()))


def _repeat_index(n: torch.Tensor) -> torch.Tensor:
    """[0] * n_0 + [1] * n_1 + ...: torch.repeat_interleave, which takes milliseconds on small
    inputs here (thread start-up), done by numpy."""
    return torch.from_numpy(np.repeat(np.arange(len(n)), n.numpy()))


def _ragged_arange(n: torch.Tensor) -> torch.Tensor:
    """Concatenated aranges: [0..n_0), [0..n_1), ... as one (sum n,) tensor."""
    return torch.arange(int(n.sum())) - (torch.cumsum(n, 0) - n)[_repeat_index(n)]


@dataclass
class MatchCounts:
    """Per true match (sorted by query): c_j per gallery segment, before prefix sums."""

    rows: torch.Tensor  # (P,) query index
    counts: torch.Tensor  # (P, S) int64
    num_queries: int


@dataclass
class _Chunk:
    """One chunk of queries [q0, q0 + n) and its same-pid pairs (rows ascending, chunk-local)."""

    q0: int
    n: int
    q_pids: torch.Tensor  # (n,)
    pr: torch.Tensor  # (S,) same-pid pairs: true matches and junk
    pc: torch.Tensor
    mr: torch.Tensor  # (P,) true matches
    mc: torch.Tensor

    def __post_init__(self):
        self.rescued = self.row_blocks = 0  # one-match path: (row, block)s re-screened in fp32
        self.m = torch.bincount(self.mr, minlength=self.n)  # (n,) matches per query
        self.row_start = torch.cumsum(self.m, 0) - self.m  # first match of each row in mr

    def band(self, v, rows, lo, hi, c0, base, g_pids, u_out):
        """Split a screened block (rows `rows`, columns from c0) by per-row thresholds (v-space,
        float64): items below `lo` are clearly before every match of their row (counted per row);
        items in [lo, hi] are returned (index into `rows`, global column, screened v). Matches and
        junk (same pid) are neither. Two passes over the block: compare and nonzero.
        A screened value v stands for anything within v +- u_out |v|; returns that slack too."""
        # largest v whose interval reaches down to hi: v - u_out |v| <= hi
        cut = torch.where(hi >= 0, hi / (1 - u_out), hi / (1 + u_out))
        cand = v <= _round(cut, v.dtype, up=True)[:, None]  # (n_rows, Gb) bool
        flat = _flat_nonzero(cand)
        del cand
        r, c = flat // v.shape[1], flat % v.shape[1]
        vals = v[r, c].double()
        slack = u_out * vals.abs()
        keep = vals - slack <= hi[r]
        if c0 < base:
            keep &= g_pids[c + c0] != self.q_pids[rows[r]]
        r, c, vals, slack = r[keep], c[keep] + c0, vals[keep], slack[keep]
        below = vals + slack < lo[r]
        n_below = torch.bincount(r[below], minlength=len(rows))
        inside = ~below
        return n_below, r[inside], c[inside], vals[inside], slack[inside]


def match_counts(
    q: torch.Tensor,
    gallery: Gallery,
    q_pids: torch.Tensor,
    g_pids: torch.Tensor,
    q_camids: torch.Tensor | None,
    g_camids: torch.Tensor | None,
    *,
    same_camera_junk: bool,
    boundaries: list[int],
    chunk_size: int,
    block_cols: int,
    screen: str = "auto",
    fast: bool | None = None,
    progress: bool | None = None,
) -> MatchCounts:
    """Counts of non-junk non-matches before each true match, per gallery segment.

    `g_pids` covers gallery part 0 only; later parts (distractors) never match.
    `boundaries` are the segment ends (ascending, last = gallery size). `screen="auto"` screens
    in bf16 and rescues rows (one-match path) or chunks (general path) whose band is crowded with
    an fp32 screen. `fast` forces (True) or forbids (False) the one-true-match path.
    `progress` shows a progress bar over the queries; None: only for large work.
    """
    names = ["bf16", "fp32"] if screen == "auto" else [screen]
    threads = torch.get_num_threads()  # the products' (`_threads`)
    with _threads(1):
        screens = _Screens(names, q, gallery, threads)  # built on first use
        # band items of a bf16 screen get a cheap fp32 look before any exact distance
        refine = screens.fp32()
        blocks = list(gallery.blocks(boundaries, block_cols))
        g_order = torch.argsort(g_pids, stable=True)  # same-pid pairs via the pid-sorted gallery
        uniq, n_per_pid = torch.unique_consecutive(g_pids[g_order], return_counts=True)
        pid_start = torch.cumsum(n_per_pid, 0) - n_per_pid
        all_rows, all_counts = [], []
        # the general path's first screen: once a chunk needed fp32, later ones start there
        first = 0
        # with screen="auto" a small first chunk probes whether bf16 screening pays off
        probe = min(_PROBE, chunk_size) if screen == "auto" else chunk_size
        # general-path chunks are kept small enough for their screened block to stay in cache
        cache_rows = max(16, _CACHE_ELEMS // max(min(block_cols, gallery.size), 1))

        def make_chunk(q0: int, n: int) -> _Chunk:
            qp = q_pids[q0 : q0 + n]
            pos = torch.searchsorted(uniq, qp).clamp(max=len(uniq) - 1)
            npair = torch.where(uniq[pos] == qp, n_per_pid[pos], 0)  # (n,)
            pr = _repeat_index(npair)
            pc = g_order[pid_start[pos][_repeat_index(npair)] + _ragged_arange(npair)]
            is_match = torch.ones(len(pr), dtype=torch.bool)
            if same_camera_junk:
                is_match = g_camids[pc] != q_camids[q0 : q0 + n][pr]
            return _Chunk(q0, n, qp, pr, pc, pr[is_match], pc[is_match])

        if progress is None:
            progress = len(q) * gallery.size >= _PROGRESS_PAIRS
        bar = None  # without a bar, no tqdm: the core runs where tqdm is not installed
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(q), desc="rank", unit="query", leave=False)
        q0 = 0
        while q0 < len(q):
            n = min(probe if q0 == 0 else chunk_size, len(q) - q0)
            ch = make_chunk(q0, n)
            use_fast = bool((ch.m == 1).all()) if fast is None else fast
            if not use_fast and n > cache_rows:
                n = cache_rows
                ch = make_chunk(q0, n)
                use_fast = bool((ch.m == 1).all()) if fast is None else fast
            if use_fast and not bool((ch.m <= 1).all()):
                raise ValueError("the one-true-match path needs at most one true match per query")
            run = _fast_chunk if use_fast else _general_chunk
            counts = None
            if screen == "auto" and not use_fast and first == 0 and len(ch.mr) > _DENSE * n:
                first = len(screens) - 1  # many matches per query: their bands cover bf16's
            for i in range(first, len(screens)):
                # the general path restarts a crowded chunk with the next screen
                last = use_fast or i + 1 == len(screens)
                budget = None if last else _restart_budget(ch, q, gallery)
                counts = run(ch, screens[i:] if use_fast else screens[i], refine, q, gallery,
                             g_pids, blocks, len(boundaries), budget)  # fmt: skip
                if counts is not None:
                    # a chunk that needed fp32 (general path) or mostly did (one-match rows) sets
                    # the first screen of those that follow
                    mostly = ch.rescued > _RESCUE_SWITCH * max(ch.row_blocks, 1)
                    if not use_fast:
                        first = i
                    elif mostly and i + 1 < len(screens):
                        first = i + 1
                    break
            all_rows.append(ch.mr + q0)
            all_counts.append(counts)
            q0 += n
            if bar is not None:
                bar.update(n)
        if bar is not None:
            bar.close()
        return MatchCounts(torch.cat(all_rows), torch.cat(all_counts), len(q))


class _Screens:
    """The screens of one evaluation, each built (norms, low-precision copies) on first use;
    `fp32()` is the fp32 screen, shared with the list when it is one of them."""

    def __init__(self, names, q, gallery, threads: int, cache=None):
        self.names, self.q, self.gallery, self.threads = list(names), q, gallery, threads
        self.cache = {} if cache is None else cache
        if "norms" not in self.cache:  # shared by every screen, as is the scale they set
            nq = _row_norms(q)
            ng = torch.cat([_row_norms(p) for p in gallery.parts])
            scale = screen_scale(max(float(nq.max()), float(ng.max())))
            self.cache["norms"] = nq, ng, scale

    def get(self, name: str) -> Screen:
        if name not in self.cache:
            norms = self.cache["norms"]
            self.cache[name] = Screen(name, self.q, self.gallery, *norms, self.threads)
        return self.cache[name]

    def fp32(self) -> _LazyScreen:
        return _LazyScreen(self, "fp32")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return _Screens(self.names[i], self.q, self.gallery, self.threads, self.cache)
        return self.get(self.names[i])

    def __iter__(self):
        return (self.get(n) for n in self.names)


class _LazyScreen:
    """A screen built when first touched (the fp32 refinement of a bf16 screen)."""

    def __init__(self, screens: _Screens, name: str):
        self._screens, self._name = screens, name

    def __getattr__(self, attr):
        return getattr(self._screens.get(self._name), attr)


def _crowd_limit(cols: int, dim: int) -> float:
    """Band items in one row beyond which an fp32 product over the row's block is cheaper."""
    return max(8.0, cols * dim * _GEMM_S_PER_MAC / _EXACT_PAIR_S)


def _restart_budget(ch: _Chunk, q: torch.Tensor, gallery: Gallery) -> float:
    """Ambiguous pairs worth resolving exactly rather than re-screening the chunk in fp32."""
    return ch.n * gallery.size * q.shape[1] * _GEMM_S_PER_MAC / _EXACT_PAIR_S


def _fast_chunk(ch, screens, refine, q, gallery, g_pids, blocks, num_segments, _budget):
    """One true match per query: count the items before it, no sort. Rows whose band is
    crowded under one screen are re-screened with the next (bf16 -> fp32)."""
    counts = torch.zeros(len(ch.mr), num_segments, dtype=torch.int64)  # (P, S)
    match_of = torch.full((ch.n,), -1)
    match_of[ch.mr] = torch.arange(len(ch.mr))  # row -> its match index, or -1
    approx = {}  # screen index -> (n,) screened distance of each row's match
    exact = torch.full((len(ch.mr),), math.nan, dtype=torch.float64)
    for part, c0, c1, seg in blocks:
        rows = torch.arange(ch.n)[match_of >= 0]
        for level, s in enumerate(screens):
            if not len(rows):
                break
            if level not in approx:
                # each row's match: screened distance and its own error bound (its norms,
                # which need not be those of the block being screened)
                qm = ch.mr + ch.q0
                a = torch.full((ch.n,), math.nan, dtype=torch.float64)
                em = torch.zeros(ch.n, dtype=torch.float64)
                a[ch.mr] = s.pairs(qm, ch.mc, gallery)
                em[ch.mr] = s.bound(s.nq[qm], s.rq[qm], s.ng[ch.mc], s.rg[ch.mc])
                approx[level] = a, em
            v, e = s.block(rows + ch.q0, part, c0, c1)
            a, em = (x[rows] for x in approx[level])
            band, nq2 = e + em, s.nq[rows + ch.q0].square()  # the item's error and the match's
            n_below, r, c, _, _ = ch.band(v, rows, a - band - nq2, a + band - nq2, c0,
                                          gallery.base, g_pids, s.u_out)  # fmt: skip
            del v
            crowded = torch.bincount(r, minlength=len(rows)) > _crowd_limit(c1 - c0, q.shape[1])
            if level + 1 == len(screens):
                crowded[:] = False
            elif level == 0:
                ch.rescued += int(crowded.sum())
                ch.row_blocks += len(rows)
            done = ~crowded
            j = match_of[rows[done]]
            counts[j, seg] += n_below[done]
            sel = done[r]
            _resolve(ch, q, gallery, refine if s.dtype == torch.bfloat16 else None, rows[r[sel]],
                     c[sel], match_of, exact, counts, seg)  # fmt: skip
            rows = rows[crowded]
    return counts


def _resolve(ch, q, gallery, refine, rows, cols, match_of, exact, counts, seg):
    """Band items (chunk rows, global cols) against their row's single match."""
    if not len(rows):
        return
    j = match_of[rows]
    _exact_matches(ch, q, gallery, exact, j)
    before = _is_before(q, gallery, refine, rows + ch.q0, cols, exact[j], ch.mc[j])
    counts[:, seg].index_add_(0, j[before], torch.ones_like(j[before]))


def _exact_matches(ch, q, gallery, exact, j):
    """Fill the cache `exact` of the true matches' exact distances at indices j."""
    need = torch.unique(j)
    need = need[exact[need].isnan()]
    exact[need] = gallery.sqdist(q, ch.mr[need] + ch.q0, ch.mc[need])


def _is_before(q, gallery, refine, qi, cols, dj, cj) -> torch.Tensor:
    """Whether gallery items `cols` come before matches (exact distance dj, column cj) for
    queries qi: an fp32 screen (`refine`) decides the clear cases, exact float64 the rest."""
    unsure = torch.ones(len(qi), dtype=torch.bool)
    before = torch.zeros(len(qi), dtype=torch.bool)
    if refine is not None:
        a = refine.pairs(qi, cols, gallery)  # (P,) float64
        e = refine.bound(refine.nq[qi], refine.rq[qi], refine.ng[cols], refine.rg[cols])
        dj_s = dj * refine.sq_scale  # the screen's units (exact: a power of two)
        before = a + e < dj_s
        unsure = ~before & (a - e <= dj_s)
    dx = gallery.sqdist(q, qi[unsure], cols[unsure])
    du, cu = dj[unsure], cj[unsure]
    before[unsure] = (dx < du) | ((dx == du) & (cols[unsure] < cu))
    return before


class _Sorted(NamedTuple):  # a chunk's true matches in another order
    q0: int
    mr: torch.Tensor
    mc: torch.Tensor


def _general_chunk(ch, s, refine, q, gallery, g_pids, blocks, num_segments, budget):
    """Any number of true matches per query. Returns None when the first block's band holds
    more ambiguous pairs than `budget` (the caller re-screens the chunk more precisely).

    Only rows with a true match are screened, and each block is read once more than the product
    that makes it: one threshold per row (the farthest match plus the band) picks the candidates.
    In the screen's own units v, match j of a row with screened distance a_j and band E gives
    t_j = a_j - 2E - |q|^2 (an item with v < t_j is surely before j) and s_j = a_j + 2E - |q|^2
    (v > s_j: surely after), rounded outwards to float32. One binary search of the candidate's
    (row, v) key among the t keys finds the first match it is surely before: it counts for that
    one and all farther ones (marked in `diff`, prefix-summed per row at the end). Matches
    between the first with s_j >= v and that one are compared more precisely."""
    refine = refine if s.dtype == torch.bfloat16 else None
    num = len(ch.mr)
    counts = torch.zeros(num, num_segments, dtype=torch.int64)
    if not num:
        return counts
    f32 = torch.float32
    act = (ch.m > 0).nonzero().squeeze(1)  # chunk rows with a true match
    local = torch.full((ch.n,), -1)
    local[act] = torch.arange(len(act))
    mrow = local[ch.mr]  # (P,) ascending: the screened row of each match
    m_act = ch.m[act]
    start = torch.cumsum(m_act, 0) - m_act  # each row's first match
    qi = act + ch.q0
    q64 = None
    nq2 = s.nq[qi].square()
    # `diff` has one slot per match plus one per row after its last: "before matches >= j"
    diff = torch.zeros(num_segments, num + len(act) + 1, dtype=torch.int64)
    exact = torch.full((num,), math.nan, dtype=torch.float64)
    same_r, same_c = local[ch.pr], ch.pc  # same-pid pairs (matches and junk) of screened rows
    same_r, same_c = same_r[same_r >= 0], same_c[same_r >= 0]
    low = torch.full((1,), -(2**62))  # key below every row's keys
    for b, (part, c0, c1, seg) in enumerate(blocks):
        v, e = s.block(qi, part, c0, c1)  # (na, Gb), (na,)
        if b == 0:
            # screened match distances, sorted within each row: the order `diff` refers to
            if int(ch.mc.max()) < c1 and s.u_out == 0:
                base = v[mrow, ch.mc - c0].float()  # v of each match (its d~ less |q|^2)
            else:
                base = (s.pairs(ch.mr + ch.q0, ch.mc, gallery) - nq2[mrow]).float()
            order = torch.argsort(_key(mrow, base))  # by row, then screened distance
            base = base[order].double()
            srt = _Sorted(0, mrow, ch.mc[order])  # rows of q64 (mrow[order] == mrow)
            # each match's own screening error (its norms, not a block's), plus the float32
            # rounding of base
            qm = qi[mrow]
            base_err = s.bound(s.nq[qm], s.rq[qm], s.ng[srt.mc], s.rg[srt.mc])
            base_err += s.u_out * base.abs() + 2.0**-23 * base.abs()
        if c0 < gallery.base:  # same pid: true matches and junk, neither counts
            sel = (same_c >= c0) & (same_c < c1)
            v.index_put_((same_r[sel], same_c[sel] - c0), torch.tensor(_INF, dtype=v.dtype))
        band = e[mrow] + base_err  # the item's error (this block) and the match's
        t_key = _key(mrow, _round(base - band, f32, up=False))
        s_val = _round(base + band, f32, up=True)
        s_key = torch.cat([low, _key(mrow, s_val)])  # s_key[k] is that of match k - 1
        # candidates: v (less its output rounding) no farther than the row's farthest s
        s_max = s_val[start + m_act - 1].double()
        cut = torch.where(s_max >= 0, s_max / (1 - s.u_out), s_max / (1 + s.u_out))
        cand = v <= _round(cut, v.dtype, up=True)[:, None]
        flat = _flat_nonzero(cand)
        del cand
        vals = v.view(-1).take(flat)
        del v
        r = flat // (c1 - c0)
        v_hi = v_lo = vals  # float32 screen: exact
        if s.u_out:  # the bf16 output stands for anything within u_out |v| of it
            slack = s.u_out * vals.double().abs()
            v_hi = _round(vals.double() + slack, f32, up=True)
            v_lo = _round(vals.double() - slack, f32, up=False)
        elif vals.dtype != f32:  # float64 screen: round outwards to the keys' float32
            v_hi, v_lo = _round(vals, f32, up=True), _round(vals, f32, up=False)
        # first match the item is surely before (t_j > v_hi): it counts for the rest of the row
        key_hi = _key(r, v_hi)
        hi = torch.searchsorted(t_key, key_hi, right=True)
        diff[seg] += torch.bincount(hi + r, minlength=diff.shape[1])
        # matches before that one with s_j >= v_lo are not surely before the item
        amb = s_key[hi] >= (key_hi if v_lo is v_hi else _key(r, v_lo))
        ia = amb.nonzero().squeeze(1)
        if not len(ia):
            continue
        r_a, hi_a = r[ia], hi[ia]
        lo_a = torch.searchsorted(s_key[1:], _key(r_a, v_lo[ia]))
        amb_n = hi_a - lo_a
        if b == 0 and budget is not None and int(amb_n.sum()) > budget:
            return None
        c_a = flat[ia] % (c1 - c0) + c0
        pair = _repeat_index(amb_n)
        amb_j = lo_a[pair] + _ragged_arange(amb_n)
        if q64 is None:  # the screened rows in float64, for exact distances
            q64 = q.index_select(0, qi).double()
        _exact_matches(srt, q64, gallery, exact, amb_j)
        if refine is None:  # each item's exact distance once, against all its matches
            dx = gallery.sqdist(q64, r_a, c_a)[pair]
            dj, cj, ca = exact[amb_j], srt.mc[amb_j], c_a[pair]
            before = (dx < dj) | ((dx == dj) & (ca < cj))
        else:
            before = _is_before(q, gallery, refine, qi[r_a[pair]], c_a[pair], exact[amb_j],
                                srt.mc[amb_j])  # fmt: skip
        counts[:, seg] += torch.bincount(amb_j[before], minlength=num)
    # c_j = exact contributions + the row's prefix sum of the "before matches >= j" marks
    csum = F.pad(diff.cumsum(1), (1, 0))  # csum[:, k] = sum of diff[:, :k]
    pos = torch.arange(num) + mrow  # slot of each match
    counts += (csum[:, pos + 1] - csum[:, (start + torch.arange(len(act)))[mrow]]).T
    out = torch.empty_like(counts)
    out[order] = counts  # back to the chunk's original match order (that of ch.mr)
    return out


def metrics_from_counts(mc: MatchCounts, max_rank: int) -> list[dict]:
    """CMC, mAP, mINP per gallery prefix (segments cumulated) from the per-match counts."""
    with _threads(1):  # small operations (`_threads`)
        return _metrics(mc, max_rank)


def _metrics(mc: MatchCounts, max_rank: int) -> list[dict]:
    out = []
    num_valid = len(torch.unique(mc.rows))
    prefix = mc.counts.cumsum(1)  # (P, S)
    big = int(prefix.max()) + 2 if len(prefix) else 1
    for s in range(prefix.shape[1]):
        c = prefix[:, s]
        order = torch.argsort(mc.rows * big + c)
        rows, c = mc.rows[order], c[order]
        m = torch.bincount(rows, minlength=mc.num_queries)
        start = torch.cumsum(m, 0) - m
        k = torch.arange(len(rows)) - start[rows]  # rank of the match among matches, 0-based
        pos = (k + c).double()  # 0-based position among non-junk gallery items
        ap = torch.zeros(mc.num_queries, dtype=torch.float64)
        ap.index_add_(0, rows, (k + 1) / (pos + 1))
        valid = m > 0
        ap = ap[valid] / m[valid]
        first = pos[start[valid]]
        last = pos[(start + m - 1)[valid]]
        inp = m[valid] / (last + 1)
        hist = torch.bincount(first[first < max_rank].long(), minlength=max_rank)
        cmc = (hist.cumsum(0).double() / max(num_valid, 1)).numpy()
        out.append(
            dict(
                cmc=cmc,
                mAP=float(ap.mean()) if num_valid else math.nan,
                mINP=float(inp.mean()) if num_valid else math.nan,
                num_queries=num_valid,
                num_skipped=mc.num_queries - num_valid,
            )
        )
    return out
