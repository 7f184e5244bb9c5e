"""Exactness of rank_metrics against the dense float64 reference on hostile features: norms over
six orders of magnitude, zero and subnormal vectors, exact ties, blocks and distractor segments of
very different norms, and norms beyond float32's range for squares."""

import pytest
import torch
from test_evaluate import assert_same, reference

from vscr_core.evaluate import _evaluate

SCREENS = ["bf16", "fp32", "fp64", "auto"]


def wide(seed, n, dim, centres, scale, pids, noise=0.3):
    """Rows around their id's centre, noise relative to the id's scale."""
    g = torch.Generator().manual_seed(seed)
    return centres[pids] + noise * scale[pids, None] * torch.randn(len(pids), dim, generator=g)


def hostile(seed, one_match, dim=12, nids=14, nq=36, nd=60):
    """Ids whose scales span 1e-3..1e3, so that rows sit at very different norms; the gallery
    has zero, subnormal and duplicated rows, the queries a zero and a subnormal row. With
    `one_match` every query's id has one gallery item, in another camera than the query's."""
    g = torch.Generator().manual_seed(seed)
    scale = 10.0 ** torch.randint(-3, 4, (nids,), generator=g).float()  # (nids,)
    centres = scale[:, None] * torch.randn(nids, dim, generator=g)
    gp = torch.arange(nids) if one_match else torch.randint(0, nids, (8 * nids,), generator=g)
    qp = torch.randint(0, nids if one_match else nids + 2, (nq,), generator=g)  # some unmatched
    gf = wide(seed + 1, len(gp), dim, centres, scale, gp)
    qf = wide(seed + 2, nq, dim, centres, scale, qp % nids)
    gc = torch.randint(0, 3, (len(gp),), generator=g)
    qc = (gc[qp % nids] + 1) % 3 if one_match else torch.randint(0, 3, (nq,), generator=g)
    subnormal = 1e-40 * torch.randn(dim, generator=g)
    assert 0 < subnormal.abs().max() < torch.finfo(torch.float32).tiny
    gf[0], gf[1], qf[0], qf[1] = 0, subnormal, 0, subnormal.flip(0)
    if not one_match:
        gf[-4:] = gf[2:6]  # exact ties, decided by gallery order
    dp = torch.randint(0, nids, (nd,), generator=g)  # distractors near the ids, never matches
    dist = wide(seed + 3, nd, dim, centres, scale, dp, noise=0.6)
    dist[:3] = torch.stack([torch.zeros(dim), subnormal, gf[5]])
    return qf, gf, qp, gp, qc, gc, dist


def evaluate(qf, gf, qp, gp, qc, gc, dist, counts, **kwargs):
    return _evaluate(qf, [gf, dist[: counts[-1]]], qp, gp, qc, gc, counts, **kwargs)


def dense(qf, gf, qp, gp, qc, gc, dist, n, junk):
    pad = torch.full((n,), -1)
    return reference(qf, torch.cat([gf, dist[:n]]), qp, torch.cat([gp, pad]), qc,
                     torch.cat([gc, pad]), junk=junk, max_rank=10)  # fmt: skip


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("one_match", [True, False], ids=["one", "many"])
@pytest.mark.parametrize("junk", ["none", "same_camera"])
@pytest.mark.parametrize("segments", [[0], [0, 25, 60]], ids=["plain", "distractors"])
@pytest.mark.parametrize("block", [None, 16])
def test_hostile_features_match_dense_reference(screen, one_match, junk, segments, block):
    data = hostile(3 + one_match, one_match)
    refs = [dense(*data, n, junk) for n in segments]
    # one-match data also through the one-match path forced (it runs by itself only when every
    # query of a chunk has exactly one match)
    for fast in [None, True] if one_match else [None]:
        got = evaluate(*data, segments, junk=junk, screen=screen, gallery_chunk_size=block,
                       chunk_size=16, max_rank=10, fast=fast)  # fmt: skip
        for g, ref in zip(got, refs, strict=True):
            assert_same(g, ref)


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("junk", ["none", "same_camera"])
@pytest.mark.parametrize("dim, radius", [(8, 256.0), (8, 1000.0), (64, 256.0)])
def test_one_match_across_blocks_of_different_norms(screen, junk, dim, radius):
    """Issue 12's construction: queries of norm R, each with its one match at distance about R
    (so of norm about R too), and distractors of norm 0.5-2, also at distance about R. The match's
    screening error is that of its own large-norm block, not of the distractors' small one.
    With junk, each query also has a same-id item in its own camera right beside it."""
    g = torch.Generator().manual_seed(int(radius) + dim)
    nq, nd = 30, 300

    def unit(n):
        return torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)

    qf = radius * unit(nq)
    gf = qf + radius * unit(nq)
    d = unit(nd) * (0.5 + 1.5 * torch.rand(nd, 1, generator=g))
    qp = gp = torch.arange(nq)
    qc, gc = torch.zeros(nq, dtype=torch.int64), torch.ones(nq, dtype=torch.int64)
    if junk == "same_camera":
        gf, gp, gc = torch.cat([gf, qf + 0.01 * radius * unit(nq)]), qp.repeat(2), gc.repeat(2)
        gc[nq:] = 0
    data = qf, gf, qp, gp, qc, gc, d
    ref = dense(*data, nd, junk)
    as_distractors = evaluate(*data, [nd], junk=junk, screen=screen, max_rank=10)[0]
    pad = torch.full((nd,), -1)
    one_gallery = _evaluate(qf, [torch.cat([gf, d])], qp, torch.cat([gp, pad]), qc,
                            torch.cat([gc, pad]), None, junk=junk, screen=screen,
                            gallery_chunk_size=16, max_rank=10)[0]  # fmt: skip
    assert_same(as_distractors, ref)
    assert_same(one_gallery, ref)


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("magnitude", [3e19, 1e30, 3e36, 1e-30])
@pytest.mark.parametrize("junk", ["none", "same_camera"])
def test_norms_outside_the_screen_range(screen, magnitude, junk):
    """Finite features whose squared norms overflow float32 (or whose distances all lie below
    the screen's absolute error floor) are screened scaled, and still ranked exactly, with and
    without a distractor segment; rows at 1e-40 (lost to underflow when scaled down) and zero
    rows are ranked exactly too."""
    g = torch.Generator().manual_seed(int(abs(torch.tensor(magnitude).log10())))
    centres = torch.randn(5, 8, generator=g)
    qp, gp, dp = torch.arange(12) % 5, torch.arange(16) % 5, torch.arange(10) % 5
    qf = magnitude * (centres[qp] + 0.7 * torch.randn(12, 8, generator=g))
    gf = magnitude * (centres[gp] + 0.7 * torch.randn(16, 8, generator=g))
    dist = magnitude * (centres[dp] + 0.7 * torch.randn(10, 8, generator=g))
    gf[3], gf[4], qf[2], dist[0], dist[1] = 0, 1e-40, 1e-39, 0, 1e-40  # query 2: nearest to them
    qc, gc = torch.randint(0, 3, (12,), generator=g), torch.randint(0, 3, (16,), generator=g)
    assert torch.isfinite(torch.cat([qf, gf, dist])).all()
    many = qf, gf, qp, gp, qc, gc, dist
    # one match per query (in another camera): the one-match path, forced
    gp1 = torch.cat([torch.arange(5), torch.full((11,), -1)])
    one = qf[:5], gf, qp[:5], gp1, (gc[:5] + 1) % 3, gc, dist
    for data, fast in ((many, None), (one, True)):
        for segments in ([0], [0, 4, 10]):
            got = evaluate(*data, segments, junk=junk, screen=screen, gallery_chunk_size=8,
                           max_rank=10, fast=fast)  # fmt: skip
            for m, n in zip(got, segments, strict=True):
                assert_same(m, dense(*data, n, junk))
