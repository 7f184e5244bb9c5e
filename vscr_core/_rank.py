"""The exact rank engine behind `vscr_core.evaluate.rank_metrics` (private).

For every query and every true match j of it, the metrics need only c_j: how many non-junk,
non-matching gallery items come before j when the gallery is sorted by distance (ties by gallery
order). With the matches' counts sorted, the k-th match (0-based) sits at position k + c_(k), which
gives CMC, AP and INP without sorting any gallery row.

Distances are screened with a cheap matrix product (bf16 by default) whose error is bounded
rigorously per query row (`_ScreenBound`): an item that is clearly closer or clearly farther than a
match is decided by the screen; only the few items within the error band of a match are compared
with exact float64 distances. The result is the ranking by exact squared Euclidean distance,
whatever the screening precision.

The gallery is walked in blocks of columns that never straddle a segment boundary, so counts can be
kept per segment: the distractor curve adds distractors as segments 1..S and reads every prefix
from one pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

SCREENS = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}
_UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}
_PAIR_CHUNK = 8192  # pairs per exact-distance gather: ~32 MB of float64 rows at 512-D
_INF = float("inf")


@dataclass
class Gallery:
    """Gallery features as parts (base gallery, distractors) that are never concatenated."""

    parts: list[torch.Tensor]  # each (G_i, D) float32
    screen: torch.dtype

    def __post_init__(self):
        self.sizes = [len(p) for p in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        self.size = self.offsets[-1]
        self.low = [p.to(self.screen) for p in self.parts]  # screening copies, (G_i, D)
        norms = [_norms(p, lo) for p, lo in zip(self.parts, self.low, strict=True)]
        self.norm = torch.cat([n for n, _ in norms])  # (G,) float64, ||g||
        self.resid = torch.cat([r for _, r in norms])  # (G,) float64, ||g - low(g)||
        # ||g||^2 as the addmm bias, in the screening dtype: (1, G) per part
        self.sqnorm_low = [n.square().to(self.screen)[None] for n, _ in norms]

    def rows(self, cols: torch.Tensor) -> torch.Tensor:
        """Float32 gallery rows for global column indices, (len(cols), D)."""
        if len(self.parts) == 1:
            return self.parts[0][cols]
        out = torch.empty(len(cols), self.parts[0].shape[1])
        for i, part in enumerate(self.parts):
            sel = (cols >= self.offsets[i]) & (cols < self.offsets[i + 1])
            out[sel] = part[cols[sel] - self.offsets[i]]
        return out

    def low_rows(self, cols: torch.Tensor) -> torch.Tensor:
        return self.rows(cols).to(self.screen)

    def blocks(self, boundaries: list[int], block_cols: int) -> Iterator[tuple[int, int, int, int]]:
        """(part, start, stop, segment): column blocks of one part and one segment each."""
        cuts = sorted(set(boundaries) | set(self.offsets))
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            part = int(np.searchsorted(self.offsets, a, side="right")) - 1
            seg = int(np.searchsorted(boundaries, a, side="right"))
            for start in range(a, b, block_cols):
                yield part, start, min(b, start + block_cols), seg


def _norms(x: torch.Tensor, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x64 = x.double()
    return x64.norm(dim=1), (x64 - low.double()).norm(dim=1)


def exact_sqdist(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Exact squared Euclidean distance of paired rows, float64, (P,). The one definition of
    distance that every ranking decision falls back on (the tests' reference uses it too)."""
    return (q.double() - g.double()).square().sum(-1)


def _pair_sqdist(q: torch.Tensor, gallery: Gallery, rows: torch.Tensor, cols: torch.Tensor):
    out = torch.empty(len(rows), dtype=torch.float64)
    for i in range(0, len(rows), _PAIR_CHUNK):
        sl = slice(i, i + _PAIR_CHUNK)
        out[sl] = exact_sqdist(q[rows[sl]], gallery.rows(cols[sl]))
    return out


class _ScreenBound:
    """Rigorous per-row bound E on |screened distance - exact distance|.

    The screen computes v = ||g||^2 - 2 <low(q), low(g)> with inputs rounded to the screening
    dtype (error <= |q| r_g + r_q |g| + r_q r_g, r = rounding residual norm), accumulation in
    fp32 or wider (gamma_D), the bias ||g||^2 and the output rounded to the screening dtype, and the
    comparison done in float32 or wider.
    """

    def __init__(self, screen: torch.dtype, dim: int):
        self.u = _UNIT_ROUNDOFF[screen]
        u_acc = min(self.u, 2.0**-24)  # bf16 products accumulate in fp32
        self.gamma = dim * u_acc / (1 - dim * u_acc)
        self.u_cmp = u_acc

    def __call__(self, nq, rq, ng, rg) -> torch.Tensor:
        """nq, rq: (Qc,) float64; ng, rg: scalars (block maxima). Returns (Qc,) float64."""
        nq_, ng_ = nq + rq, ng + rg
        dot_in = nq * rg + rq * ng + rq * rg
        dot_acc = self.gamma * nq_ * ng_
        out = self.u * (ng**2 + 2 * (1 + self.gamma) * nq_ * ng_) * (1 + self.u) + self.u * ng**2
        cmp = 8 * self.u_cmp * (nq + ng) ** 2
        return (2 * (dot_in + dot_acc) + out + cmp) * (1 + 1e-3) + 1e-30


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


@dataclass
class MatchCounts:
    """Per true match (sorted by query): c_j per gallery segment, before prefix sums."""

    rows: torch.Tensor  # (P,) query index
    counts: torch.Tensor  # (P, S) int64
    num_queries: int


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
    fast: bool | None = None,
) -> MatchCounts:
    """Counts of non-junk non-matches before each true match, per gallery segment.

    `g_pids` covers gallery part 0 only; later parts (distractors) never match.
    `boundaries` are the segment ends (ascending, last = gallery size).
    `fast` forces (True) or forbids (False) the one-true-match path; None picks it when it applies.
    """
    base = gallery.sizes[0]
    bound = _ScreenBound(gallery.screen, q.shape[1])
    # Same-pid pairs via the pid-sorted gallery.
    g_order = torch.argsort(g_pids, stable=True)
    uniq, n_per_pid = torch.unique_consecutive(g_pids[g_order], return_counts=True)
    pid_start = torch.cumsum(n_per_pid, 0) - n_per_pid
    q_low = q.to(gallery.screen)
    nq, rq = _norms(q, q_low)  # (Q,) float64 each
    all_rows, all_counts = [], []
    num_segments = len(boundaries)
    for q0 in range(0, len(q), chunk_size):
        q1 = min(len(q), q0 + chunk_size)
        qc = q1 - q0
        # 1. same-pid pairs of this chunk (rows ascending): true matches and junk
        pos = torch.searchsorted(uniq, q_pids[q0:q1]).clamp(max=len(uniq) - 1)
        n = torch.where(uniq[pos] == q_pids[q0:q1], n_per_pid[pos], 0)  # (Qc,)
        pr = torch.repeat_interleave(torch.arange(qc), n)
        pc = g_order[torch.repeat_interleave(pid_start[pos], n) + _ragged_arange(n)]
        is_match = torch.ones(len(pr), dtype=torch.bool)
        if same_camera_junk:
            is_match = g_camids[pc] != q_camids[q0:q1][pr]
        mr, mc = pr[is_match], pc[is_match]  # (P,) true matches
        m = torch.bincount(mr, minlength=qc)  # (Qc,)
        use_fast = bool((m == 1).all()) if fast is None else fast
        if use_fast and not bool((m <= 1).all()):
            raise ValueError("the one-true-match path needs at most one true match per query")
        counts = torch.zeros(len(mr), num_segments, dtype=torch.int64)  # (P, S)
        diff = torch.zeros(len(mr) + 1, num_segments, dtype=torch.int64)
        row_start = torch.cumsum(m, 0) - m  # (Qc,) first match of each row in (mr, mc)
        qs = q_low[q0:q1]
        nqc, rqc = nq[q0:q1], rq[q0:q1]
        approx = None  # (P,) screened distances of the matches
        exact_match = torch.full((len(mr),), math.nan, dtype=torch.float64)
        for part, c0, c1, seg in gallery.blocks(boundaries, block_cols):
            p0 = gallery.offsets[part]
            gl = gallery.low[part][c0 - p0 : c1 - p0]
            # 2. screened v = ||g||^2 - 2<q,g>, (Qc, Gb); d~ = ||q||^2 + v
            v = torch.addmm(gallery.sqnorm_low[part][:, c0 - p0 : c1 - p0], qs, gl.T, alpha=-2)
            e = bound(nqc, rqc, gallery.norm[c0:c1].max(), gallery.resid[c0:c1].max())
            if approx is None:
                approx = _match_approx(q, qs, gallery, q0, mr, mc, v, c0, c1, nqc)
                a_min = torch.full((qc,), _INF, dtype=torch.float64)
                a_max = torch.full((qc,), -_INF, dtype=torch.float64)
                a_min.scatter_reduce_(0, mr, approx, "amin")
                a_max.scatter_reduce_(0, mr, approx, "amax")
                a_min[m == 0] = -_INF  # no match: no candidates, nothing counted
                if not use_fast:
                    order = torch.argsort(_key(mr, approx.float()))
                    mr, mc, approx = mr[order], mc[order], approx[order]
                    sorted_keys = _key(mr, approx.float())
            # 3. clearly before every match of the row, and the band that needs a closer look
            cmp_dtype = torch.float64 if gallery.screen == torch.float64 else torch.float32
            lo = _round(a_min - 2 * e - nqc, cmp_dtype, up=False)[:, None]
            hi = _round(a_max + 2 * e - nqc, cmp_dtype, up=True)[:, None]
            below = v < lo  # (Qc, Gb) bool
            n_below = below.sum(1)
            cand = (v <= hi) ^ below
            del below
            r, c = cand.nonzero(as_tuple=True)
            del cand
            vals = v[r, c].double() + nqc[r]  # (N,) screened distances of the candidates
            c = c + c0
            if c0 < base:  # matches and junk are never counted as impostors
                sp = (pc >= c0) & (pc < c1)
                spr, spc = pr[sp], pc[sp] - c0
                n_below -= torch.bincount(spr[v[spr, spc] < lo[spr, 0]], minlength=qc)
                keep = g_pids[c] != q_pids[q0:q1][r]
                r, c, vals = r[keep], c[keep], vals[keep]
            has = m > 0
            diff[row_start[has], seg] += n_below[has]
            # 4. which matches each candidate is clearly before (diff) or ambiguous with (exact)
            if use_fast:
                amb_x = torch.arange(len(r))
                amb_j = row_start[r]
            else:
                er = e[r]
                key_lo = _key(r, _round(vals - 2 * er, torch.float32, up=False))
                key_hi = _key(r, _round(vals + 2 * er, torch.float32, up=True))
                # matches [row start, lo_j) are clearly closer, [hi_j, row end) clearly farther
                lo_j = torch.searchsorted(sorted_keys, key_lo)
                hi_j = torch.searchsorted(sorted_keys, key_hi, right=True)
                sure = hi_j < row_start[r] + m[r]
                diff[:, seg].index_add_(0, hi_j[sure], torch.ones_like(hi_j[sure]))
                amb_n = hi_j - lo_j
                amb_x = torch.repeat_interleave(torch.arange(len(r)), amb_n)
                amb_j = torch.repeat_interleave(lo_j, amb_n) + _ragged_arange(amb_n)
            if len(amb_x):
                ux, inv_x = torch.unique(amb_x, return_inverse=True)
                dx = _pair_sqdist(q, gallery, r[ux] + q0, c[ux])[inv_x]
                need = torch.unique(amb_j)
                need = need[exact_match[need].isnan()]
                exact_match[need] = _pair_sqdist(q, gallery, mr[need] + q0, mc[need])
                dj = exact_match[amb_j]
                cx, cj = c[amb_x], mc[amb_j]
                before = (dx < dj) | ((dx == dj) & (cx < cj))
                counts[:, seg].index_add_(0, amb_j[before], torch.ones_like(amb_j[before]))
            del v
        # 5. c_j = direct (exact) contributions + prefix sums of the "before all from here" marks
        cs = diff[:-1].cumsum(0)
        prev = torch.cat([torch.zeros(1, num_segments, dtype=torch.int64), cs])[row_start[mr]]
        counts += cs - prev
        all_rows.append(mr + q0)
        all_counts.append(counts)
    return MatchCounts(torch.cat(all_rows), torch.cat(all_counts), len(q))


def _ragged_arange(n: torch.Tensor) -> torch.Tensor:
    """Concatenated aranges: [0..n_0), [0..n_1), ... as one (sum n,) tensor."""
    return torch.arange(int(n.sum())) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)


def _match_approx(q, qs, gallery, q0, mr, mc, v, c0, c1, nqc) -> torch.Tensor:
    """Screened distances of the true matches (P,) float64, within the same bound as v."""
    if len(mc) and int(mc.min()) >= c0 and int(mc.max()) < c1:
        return v[mr, mc - c0].double() + nqc[mr]
    acc = torch.float64 if gallery.screen == torch.float64 else torch.float32
    out = torch.empty(len(mr), dtype=torch.float64)
    for i in range(0, len(mr), _PAIR_CHUNK):
        sl = slice(i, i + _PAIR_CHUNK)
        dot = (qs[mr[sl]].to(acc) * gallery.low_rows(mc[sl]).to(acc)).sum(1)
        out[sl] = gallery.norm[mc[sl]].square() - 2 * dot.double() + nqc[mr[sl]]
    return out


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
