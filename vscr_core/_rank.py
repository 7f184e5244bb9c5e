"""The exact rank engine behind `vscr_core.evaluate.rank_metrics` (private).

For every query and every true match j of it, the metrics need only c_j: how many non-junk,
non-matching gallery items come before j when the gallery is sorted by distance (ties by gallery
order). With the matches' counts sorted, the k-th match (0-based) sits at position k + c_(k), which
gives CMC, AP and INP without sorting any gallery row.

Distances are screened with a matrix product (bf16 or fp32) whose error is bounded rigorously per
query row (`_ScreenBound`): an item clearly closer or clearly farther than a match is decided by
the screen; items within the error band of a match get an fp32 pair distance with its own bound,
and only the still undecided (in practice exact ties) an exact float64 distance. The result is the
ranking by exact squared Euclidean distance, whatever the screening precision.

bf16 runs about 3x faster than fp32 here but its band is ~100x wider. With screen="auto":
one-true-match queries (UAV-VeID, VehicleID) are screened in bf16 and a row whose band is crowded
is re-screened in fp32 for that block; the general path tries bf16 on a small probe chunk and
switches to fp32 when the band would cost more than the fp32 product.

The gallery is walked in blocks of columns that never straddle a segment boundary, so counts can be
kept per segment: the distractor curve adds distractors as segments 1..S and reads every prefix
from one pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

SCREENS = ("auto", "bf16", "fp32", "fp64")
_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}
_UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}
_PAIR_CHUNK = 1024  # pairs per exact-distance gather (4 MB of float64 rows at 512-D)
_ROW_CHUNK = 16384  # rows per norm computation, to bound the float64 temporaries
_EXACT_PAIR_S = 1e-6  # cost of settling one band item (fp32 pair, rarely exact), 512-D
_GEMM_S_PER_MAC = 1e-11  # ~100 GFLOP/s float32 on 2 cores
_RESCUE_SWITCH = 0.5  # rescued share of a chunk beyond which bf16 + fp32 costs more than fp32
_PROBE = 256  # queries in the first chunk when the screen is chosen automatically
_INF = float("inf")


def _norms(x: torch.Tensor, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """||x|| (float64 sums: the fp32 screen's band is then set by the product alone) and
    ||x - low|| (float32; x - low is exact in float32) per row, both float64."""
    norm, resid = torch.empty(len(x), dtype=torch.float64), torch.zeros(len(x), dtype=torch.float64)
    for i in range(0, len(x), _ROW_CHUNK):
        sl = slice(i, i + _ROW_CHUNK)
        norm[sl] = torch.linalg.vector_norm(x[sl].double(), dim=1)
        if low.dtype != x.dtype:
            resid[sl] = torch.linalg.vector_norm(x[sl] - low[sl].float(), dim=1).double()
    return norm, resid


def exact_sqdist(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Exact squared Euclidean distance of paired rows, float64, (P,). The one definition of
    distance that every ranking decision falls back on (the tests' reference uses it too)."""
    return (q.double() - g.double()).square().sum(-1)


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
            return self.parts[0][cols]
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
            out[sl] = exact_sqdist(q[rows[sl]], self.rows(cols[sl]))
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

    def __init__(self, name: str, q: torch.Tensor, gallery: Gallery):
        self.dtype = _DTYPES[name]
        self.augmented = self.dtype == torch.bfloat16
        u = _UNIT_ROUNDOFF[self.dtype]  # the bf16 output is rounded to nearest (vcvtneps2bf16)
        self.u_out = u / (1 - u) if self.augmented else 0.0
        self.bound = _ScreenBound(self.dtype, q.shape[1], self.augmented)
        self.q = q.to(self.dtype)  # (Q, D); no copy for fp32
        self.nq, self.rq = _norms(q, self.q)
        self.parts = [p.to(self.dtype) for p in gallery.parts]
        norms = [_norms(p, lo) for p, lo in zip(gallery.parts, self.parts, strict=True)]
        self.ng = torch.cat([n for n, _ in norms])  # (G,) float64
        self.rg = torch.cat([r for _, r in norms])
        self.offsets = gallery.offsets
        if self.augmented:
            dim = -(-(q.shape[1] + 2) // 16) * 16  # room for the two bias columns, aligned
            self.qa = F.pad(-2 * self.q, (0, dim - q.shape[1]))  # (Q, dim) [-2q, 1, 1, 0...]
            self.qa[:, q.shape[1] : q.shape[1] + 2] = 1
            self.ga = []
            for (n, _), low in zip(norms, self.parts, strict=True):
                hi = n.square().to(self.dtype)
                lo = (n.square() - hi.double()).to(self.dtype)
                ga = F.pad(low, (0, dim - q.shape[1]))  # (G_i, dim) [g, hi, lo, 0...]
                ga[:, q.shape[1]], ga[:, q.shape[1] + 1] = hi, lo
                self.ga.append(ga)
            self.parts = None  # the augmented copies replace the plain ones
        else:
            self.bias = [n.square().to(self.dtype)[None] for n, _ in norms]  # (1, G_i)

    def block(self, qi: torch.Tensor, part: int, c0: int, c1: int):
        """Screened v = ||g||^2 - 2<q, g> (len(qi), c1 - c0), so that d~ = ||q||^2 + v, and the
        per-row error bound E (len(qi),) float64 of d~ (plus `u_out` |v| per element)."""
        a, b = c0 - self.offsets[part], c1 - self.offsets[part]
        if self.augmented:
            v = torch.mm(self.qa[qi], self.ga[part][a:b].T)
        else:
            v = torch.addmm(self.bias[part][:, a:b], self.q[qi], self.parts[part][a:b].T, alpha=-2)
        return v, self.bound(self.nq[qi], self.rq[qi], self.ng[c0:c1].max(), self.rg[c0:c1].max())

    def pairs(self, qi: torch.Tensor, cols: torch.Tensor, gallery: Gallery) -> torch.Tensor:
        """Screened distances d~ of (query, column) pairs (P,) float64, within the same bound."""
        acc = torch.float64 if self.dtype == torch.float64 else torch.float32
        out = torch.empty(len(qi), dtype=torch.float64)
        for i in range(0, len(qi), _PAIR_CHUNK):
            sl = slice(i, i + _PAIR_CHUNK)
            g = gallery.rows(cols[sl]).to(self.dtype).to(acc)
            dot = (self.q[qi[sl]].to(acc) * g).sum(1).double()
            out[sl] = self.ng[cols[sl]].square() - 2 * dot + self.nq[qi[sl]].square()
        return out


def _round(x: torch.Tensor, dtype: torch.dtype, up: bool) -> torch.Tensor:
    """Cast float64 to dtype rounding up or down, so that a screening threshold never shrinks."""
    y = x.to(dtype)
    direction = torch.full_like(y, _INF if up else -_INF)
    off = (y.double() < x) if up else (y.double() > x)
    return torch.where(off, torch.nextafter(y, direction), y)


def _key(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Int64 keys ordered by (row, float32 value): the float bits made sortable as integers."""
    bits = values.contiguous().view(torch.int32).long()
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + 2**31
    return (rows << 32) | bits


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
        r, c = cand.nonzero(as_tuple=True)
        del cand
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
) -> MatchCounts:
    """Counts of non-junk non-matches before each true match, per gallery segment.

    `g_pids` covers gallery part 0 only; later parts (distractors) never match.
    `boundaries` are the segment ends (ascending, last = gallery size). `screen="auto"` screens
    in bf16 and rescues rows (one-match path) or chunks (general path) whose band is crowded with
    an fp32 screen. `fast` forces (True) or forbids (False) the one-true-match path.
    """
    names = ["bf16", "fp32"] if screen == "auto" else [screen]
    screens = [Screen(name, q, gallery) for name in names]
    # band items of a bf16 screen get a cheap fp32 look before any exact distance
    refine = screens[-1] if names[-1] == "fp32" else Screen("fp32", q, gallery)
    blocks = list(gallery.blocks(boundaries, block_cols))
    g_order = torch.argsort(g_pids, stable=True)  # same-pid pairs via the pid-sorted gallery
    uniq, n_per_pid = torch.unique_consecutive(g_pids[g_order], return_counts=True)
    pid_start = torch.cumsum(n_per_pid, 0) - n_per_pid
    all_rows, all_counts = [], []
    first = 0  # the general path's first screen: once a chunk needed fp32, later ones start there
    # with screen="auto" a small first chunk probes whether bf16 screening pays off
    probe = min(_PROBE, chunk_size) if screen == "auto" else chunk_size
    cuts = [0, *range(probe, len(q), chunk_size), len(q)]
    for q0, q1 in zip(cuts[:-1], cuts[1:], strict=True):
        n = q1 - q0
        qp = q_pids[q0 : q0 + n]
        pos = torch.searchsorted(uniq, qp).clamp(max=len(uniq) - 1)
        npair = torch.where(uniq[pos] == qp, n_per_pid[pos], 0)  # (n,)
        pr = _repeat_index(npair)
        pc = g_order[pid_start[pos][_repeat_index(npair)] + _ragged_arange(npair)]
        is_match = torch.ones(len(pr), dtype=torch.bool)
        if same_camera_junk:
            is_match = g_camids[pc] != q_camids[q0 : q0 + n][pr]
        ch = _Chunk(q0, n, qp, pr, pc, pr[is_match], pc[is_match])
        use_fast = bool((ch.m == 1).all()) if fast is None else fast
        if use_fast and not bool((ch.m <= 1).all()):
            raise ValueError("the one-true-match path needs at most one true match per query")
        run = _fast_chunk if use_fast else _general_chunk
        counts = None
        for i in range(first, len(screens)):
            # the general path restarts a crowded chunk with the next screen
            last = use_fast or i + 1 == len(screens)
            budget = None if last else _restart_budget(ch, q, gallery)
            counts = run(ch, screens[i:] if use_fast else screens[i], refine, q, gallery, g_pids,
                         blocks, len(boundaries), budget)  # fmt: skip
            if counts is not None:
                # a chunk that needed fp32 (general path) or mostly did (one-match rows) sets
                # the first screen of those that follow
                if not use_fast:
                    first = i
                elif ch.rescued > _RESCUE_SWITCH * max(ch.row_blocks, 1) and i + 1 < len(screens):
                    first = i + 1
                break
        all_rows.append(ch.mr + q0)
        all_counts.append(counts)
    return MatchCounts(torch.cat(all_rows), torch.cat(all_counts), len(q))


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
                approx[level] = torch.full((ch.n,), math.nan, dtype=torch.float64)
                has = match_of >= 0
                approx[level][has] = s.pairs(ch.mr + ch.q0, ch.mc, gallery)[match_of[has]]
            v, e = s.block(rows + ch.q0, part, c0, c1)
            a, nq2 = approx[level][rows], s.nq[rows + ch.q0].square()
            n_below, r, c, _, _ = ch.band(v, rows, a - 2 * e - nq2, a + 2 * e - nq2, c0,
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
        before = a + e < dj
        unsure = ~before & (a - e <= dj)
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
    more ambiguous pairs than `budget` (the caller re-screens the chunk more precisely)."""
    mr, mc = ch.mr, ch.mc
    refine = refine if s.dtype == torch.bfloat16 else None
    counts = torch.zeros(len(mr), num_segments, dtype=torch.int64)  # (P, S) exact contributions
    diff = torch.zeros(len(mr) + 1, num_segments, dtype=torch.int64)  # "before matches >= j"
    exact = torch.full((len(mr),), math.nan, dtype=torch.float64)
    rows = torch.arange(ch.n)
    has = ch.m > 0
    nq2 = s.nq[ch.q0 : ch.q0 + ch.n].square()
    for b, (part, c0, c1, seg) in enumerate(blocks):
        v, e = s.block(rows + ch.q0, part, c0, c1)  # (n, Gb), (n,)
        if b == 0:
            # screened match distances, sorted within each row: the order `diff` refers to
            if len(mc) and int(mc.max()) < c1 and s.u_out == 0:
                approx = v[mr, mc - c0].double() + nq2[mr]
            else:
                approx = s.pairs(mr + ch.q0, mc, gallery)
            order = torch.argsort(_key(mr, approx.float()))
            mr, mc, approx = mr[order], mc[order], approx[order]
            sorted_keys = _key(mr, approx.float())
            a_min = torch.full((ch.n,), -_INF, dtype=torch.float64)  # no match: empty band
            a_max = torch.full((ch.n,), -_INF, dtype=torch.float64)
            a_min[has] = approx[ch.row_start[has]]
            a_max[has] = approx[(ch.row_start + ch.m - 1)[has]]
        n_below, r, c, vals, slack = ch.band(v, rows, a_min - 2 * e - nq2, a_max + 2 * e - nq2,
                                             c0, gallery.base, g_pids, s.u_out)  # fmt: skip
        del v
        diff[ch.row_start[has], seg] += n_below[has]
        # which matches each band item is clearly before (diff) or ambiguous with (exact)
        vals, margin = vals + nq2[r], 2 * e[r] + slack
        key_lo = _key(r, _round(vals - margin, torch.float32, up=False))
        key_hi = _key(r, _round(vals + margin, torch.float32, up=True))
        # matches [row start, lo_j) are clearly closer, [hi_j, row end) clearly farther
        lo_j = torch.searchsorted(sorted_keys, key_lo)
        hi_j = torch.searchsorted(sorted_keys, key_hi, right=True)
        amb_n = hi_j - lo_j
        if b == 0 and budget is not None and int(amb_n.sum()) > budget:
            return None
        sure = hi_j < ch.row_start[r] + ch.m[r]
        diff[:, seg].index_add_(0, hi_j[sure], torch.ones_like(hi_j[sure]))
        amb_x = _repeat_index(amb_n)
        amb_j = lo_j[amb_x] + _ragged_arange(amb_n)
        if len(amb_x):
            _exact_matches(_Sorted(ch.q0, mr, mc), q, gallery, exact, amb_j)
            before = _is_before(q, gallery, refine, r[amb_x] + ch.q0, c[amb_x], exact[amb_j],
                                mc[amb_j])  # fmt: skip
            counts[:, seg].index_add_(0, amb_j[before], torch.ones_like(amb_j[before]))
    # c_j = exact contributions + prefix sums of the "before every match from here on" marks
    cs = diff[:-1].cumsum(0)
    prev = torch.cat([torch.zeros(1, num_segments, dtype=torch.int64), cs])[ch.row_start[mr]]
    counts += cs - prev
    # back to the chunk's original match order (that of ch.mr)
    return counts[torch.argsort(order)]


def metrics_from_counts(mc: MatchCounts, max_rank: int) -> list[dict]:
    """CMC, mAP, mINP per gallery prefix (segments cumulated) from the per-match counts."""
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
