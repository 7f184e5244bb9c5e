"""rank_metrics and the protocols against a small dense torchreid-style reference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vscr_core import _rank
from vscr_core.evaluate import (
    _evaluate,
    distractor_curve,
    evaluate_uav_veid,
    evaluate_vehicleid,
    evaluate_veri776,
    rank_metrics,
    vehicleid_split,
)


def reference(qf, gf, qp, gp, qc=None, gc=None, *, junk="same_camera", metric="euclidean",
              max_rank=50):  # fmt: skip
    """torchreid's eval_market1501 with a stable sort, over the same exact distances."""
    qf, gf = torch.as_tensor(qf, dtype=torch.float32), torch.as_tensor(gf, dtype=torch.float32)
    if metric == "cosine":
        qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    dist = _rank.exact_sqdist(qf[:, None, :], gf[None, :, :]).numpy()  # (Q, G)
    qp, gp = np.asarray(qp), np.asarray(gp)
    cmcs, aps, inps = [], [], []
    for i in range(len(qf)):
        order = np.argsort(dist[i], kind="stable")
        keep = np.ones(len(gf), dtype=bool)
        if junk == "same_camera":
            keep = ~((gp[order] == qp[i]) & (np.asarray(gc)[order] == np.asarray(qc)[i]))
        raw = (gp[order] == qp[i])[keep].astype(np.int64)
        if not raw.any():
            continue
        cmc = raw.cumsum()
        last = np.flatnonzero(raw).max()
        inps.append(cmc[last] / (last + 1.0))
        cmc = np.minimum(cmc, 1)
        cmc = np.concatenate([cmc, np.ones(max(0, max_rank - len(cmc)), dtype=np.int64)])
        cmcs.append(cmc[:max_rank])
        prec = raw.cumsum() / np.arange(1, len(raw) + 1)
        aps.append((prec * raw).sum() / raw.sum())
    return dict(cmc=np.mean(cmcs, 0), mAP=np.mean(aps), mINP=np.mean(inps),
                num_queries=len(aps), num_skipped=len(qf) - len(aps))  # fmt: skip


def assert_same(got, ref):
    np.testing.assert_allclose(got.cmc, ref["cmc"], atol=1e-6, rtol=0)
    assert got.mAP == pytest.approx(ref["mAP"], abs=1e-6)
    assert got.mINP == pytest.approx(ref["mINP"], abs=1e-6)
    assert (got.num_queries, got.num_skipped) == (ref["num_queries"], ref["num_skipped"])


def make(seed, nq=40, ng=120, dim=16, nids=15, ncams=4, quantised=False):
    """Clustered features: each id has a centre; quantised features make exact distance ties."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(nids, dim, generator=g)
    qp = torch.randint(0, nids + 3, (nq,), generator=g)  # ids >= nids: no match in the gallery
    gp = torch.randint(0, nids, (ng,), generator=g)
    qf = centres[qp % nids] + 0.8 * torch.randn(nq, dim, generator=g)
    gf = centres[gp] + 0.8 * torch.randn(ng, dim, generator=g)
    if quantised:  # few distinct values: many equal distances
        qf, gf = (qf * 1.5).round() / 2, (gf * 1.5).round() / 2
        gf[-10:] = gf[:10]  # duplicated gallery rows
    qc = torch.randint(0, ncams, (nq,), generator=g)
    gc = torch.randint(0, ncams, (ng,), generator=g)
    return qf, gf, qp, gp, qc, gc


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("junk", ["same_camera", "none"])
@pytest.mark.parametrize("quantised", [False, True])
def test_matches_dense_reference(seed, junk, quantised):
    qf, gf, qp, gp, qc, gc = make(seed, quantised=quantised)
    for metric in ("euclidean", "cosine"):
        got = rank_metrics(qf, gf, qp, gp, qc, gc, junk=junk, metric=metric, max_rank=20)
        assert_same(got, reference(qf, gf, qp, gp, qc, gc, junk=junk, metric=metric, max_rank=20))
    assert got.num_skipped > 0  # ids without gallery images are counted, not dropped


@pytest.mark.parametrize("screen", ["auto", "bf16", "fp32", "fp64"])
@pytest.mark.parametrize("chunks", [(None, None), (4, 16), (13, 50)])
def test_screen_and_chunking_do_not_change_results(screen, chunks):
    qf, gf, qp, gp, qc, gc = make(7, nq=50, ng=200, quantised=True)
    ref = reference(qf, gf, qp, gp, qc, gc)
    got = rank_metrics(qf, gf, qp, gp, qc, gc, screen=screen, chunk_size=chunks[0],
                       gallery_chunk_size=chunks[1])  # fmt: skip
    assert_same(got, ref)


def test_near_ties_beyond_bf16_precision():
    """Items closer than the bf16 error to the true match: decided exactly, in gallery order."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(1, 64, generator=g)
    gf = base + 1e-4 * torch.randn(300, 64, generator=g)  # all within bf16 noise of each other
    gf[100] = gf[40]  # exact tie with an earlier item
    qf = base.repeat(30, 1) + 1e-4 * torch.randn(30, 64, generator=g)
    gp = torch.arange(300)
    qp = torch.tensor([40, 100] * 15)
    assert_same(rank_metrics(qf, gf, qp, gp, junk="none"), reference(qf, gf, qp, gp, junk="none"))


def one_match_data(seed, nq=60, nids=25, dim=16, quantised=False):
    g = torch.Generator().manual_seed(seed)
    gf = torch.randn(nids, dim, generator=g)
    qp = torch.randint(0, nids, (nq,), generator=g)
    qf = gf[qp] + 0.9 * torch.randn(nq, dim, generator=g)
    if quantised:
        qf, gf = qf.round(), gf.round()
    dist = torch.randn(400, dim, generator=g)
    return qf, gf, qp, torch.arange(nids), (dist.round() if quantised else dist)


@pytest.mark.parametrize("quantised", [False, True])
def test_fast_path_equals_general_path(quantised):
    qf, gf, qp, gp, _ = one_match_data(1, quantised=quantised)
    ref = reference(qf, gf, qp, gp, junk="none")
    for fast in (True, False):
        got = _evaluate(qf, [gf], qp, gp, None, None, None, junk="none", fast=fast)[0]
        assert_same(got, ref)
        assert got.mAP == pytest.approx(got.mINP)  # one match: AP = INP = 1 / rank


@pytest.mark.parametrize("quantised", [False, True])
def test_distractor_curve_equals_separate_evaluations(quantised):
    qf, gf, qp, gp, dist = one_match_data(2, quantised=quantised)
    counts = [0, 1, 50, 399, 400, 50]
    curve = distractor_curve(qf, gf, qp, gp, dist, counts, gallery_chunk_size=64)
    assert list(curve) == [0, 1, 50, 399, 400]
    for n in counts:
        gall = torch.cat([gf, dist[:n]])
        gpn = torch.cat([gp, torch.full((n,), -1)])
        assert_same(curve[n], reference(qf, gall, qp, gpn, junk="none"))
    assert curve[400].rank(1) <= curve[0].rank(1)
    assert_same(evaluate_uav_veid(qf, gf, qp, gp, distractor_feats=dist),
                reference(qf, torch.cat([gf, dist]), qp, torch.cat([gp, torch.full((400,), -1)]),
                          junk="none"))  # fmt: skip


def test_distractor_curve_with_junk_and_many_matches():
    qf, gf, qp, gp, qc, gc = make(4, quantised=True)
    dist = make(5, ng=90, quantised=True)[1]
    curve = distractor_curve(qf, gf, qp, gp, dist, [0, 30, 90], q_camids=qc, g_camids=gc,
                             junk="same_camera", gallery_chunk_size=16)  # fmt: skip
    for n in (0, 30, 90):
        gall, gpn = torch.cat([gf, dist[:n]]), torch.cat([gp, torch.full((n,), -1)])
        gcn = torch.cat([gc, torch.full((n,), -1)])
        assert_same(curve[n], reference(qf, gall, qp, gpn, qc, gcn))


def test_protocols():
    qf, gf, qp, gp, qc, gc = make(9)
    assert_same(evaluate_veri776(qf, gf, qp, gp, qc, gc), reference(qf, gf, qp, gp, qc, gc))
    feats, pids = torch.cat([qf, gf]), torch.cat([qp, gp])
    res = evaluate_vehicleid(feats, pids, num_draws=3, seed=5)
    assert len(res.draws) == 3 and set(res.mean) >= {"rank1", "rank5", "mAP"}
    gi, qi = vehicleid_split(pids.numpy(), 5, 1)
    assert len(gi) == len(np.unique(pids)) and len(gi) + len(qi) == len(pids)
    assert_same(res.draws[1], reference(feats[qi], feats[gi], pids[qi], pids[gi], junk="none"))
    assert evaluate_vehicleid(feats, pids, num_draws=3, seed=5).mean == res.mean
    assert np.std([d.mAP for d in res.draws]) == pytest.approx(res.std["mAP"])


def test_rank_metrics_accessors():
    qf, gf, qp, gp, qc, gc = make(0)
    m = rank_metrics(qf, gf, qp, gp, qc, gc, max_rank=10)
    assert m.cmc.shape == (10,) and m.rank(1) == m.cmc[0]
    assert m.as_dict()["rank10"] == m.cmc[9] and "rank20" not in m.as_dict()
    with pytest.raises(ValueError, match="k must be"):
        m.rank(11)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(q_pids=torch.zeros(3, dtype=torch.int64)), "q_pids has 3 entries"),
        (dict(g_pids=torch.zeros(120)), "g_pids must hold integers"),
        (dict(q_feats=torch.full((40, 16), float("nan"))), "q_feats contains NaN"),
        (dict(g_feats=torch.full((120, 16), float("inf"))), "g_feats contains NaN"),
        (dict(q_feats=torch.zeros(0, 16)), "q_feats is empty"),
        (dict(g_feats=torch.zeros(0, 16)), "g_feats is empty"),
        (dict(g_feats=torch.zeros(120, 8)), "g_feats has dimension 8"),
        (dict(q_feats=torch.zeros(40, 16, 1)), "q_feats must be 2-D"),
        (dict(q_feats=torch.zeros(40, 16, dtype=torch.int64)), "q_feats must be floating"),
        (dict(q_camids=None), "q_camids is required"),
        (dict(g_camids=torch.zeros(5, dtype=torch.int64)), "g_camids has 5 entries"),
        (dict(junk="camera"), "junk must be one of"),
        (dict(metric="l1"), "metric must be one of"),
        (dict(max_rank=0), "max_rank"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_input(change, match):
    qf, gf, qp, gp, qc, gc = make(0)
    args = dict(q_feats=qf, g_feats=gf, q_pids=qp, g_pids=gp, q_camids=qc, g_camids=gc)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        rank_metrics(**args)


def test_bad_distractor_counts():
    qf, gf, qp, gp, dist = one_match_data(0)
    with pytest.raises(ValueError, match="counts must be"):
        distractor_curve(qf, gf, qp, gp, dist, [0, 401])


def veri_like(seed, nq=100, ng=1000, dim=48, nids=16, ncams=6):
    """Many true matches per query (dozens), spread over the distance range: the general path
    with dense matches, as at VeRi-776 size."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.6 * torch.randn(nids, dim, generator=g)
    gp = torch.arange(ng) % nids
    qp = torch.randint(0, nids, (nq,), generator=g)
    qf = centres[qp] + 0.5 * torch.randn(nq, dim, generator=g)
    gf = centres[gp] + 0.5 * torch.randn(ng, dim, generator=g)
    gf[-50:] = gf[:50]  # exact duplicates: ties decided by gallery order
    qc = torch.randint(0, ncams, (nq,), generator=g)
    gc = torch.randint(0, ncams, (ng,), generator=g)
    return qf, gf, qp, gp, qc, gc


@pytest.mark.parametrize("screen", ["auto", "bf16", "fp64"])
def test_dense_matches_small_chunks(monkeypatch, screen):
    """Cache-sized query chunks, several gallery blocks, and the fp32 product without oneDNN."""
    qf, gf, qp, gp, qc, gc = veri_like(11)
    ref = reference(qf, gf, qp, gp, qc, gc)
    assert_same(rank_metrics(qf, gf, qp, gp, qc, gc, screen=screen), ref)
    monkeypatch.setattr(_rank, "_CACHE_ELEMS", 3000)  # chunks of 16 queries
    assert_same(rank_metrics(qf, gf, qp, gp, qc, gc, screen=screen, gallery_chunk_size=400), ref)
    monkeypatch.setattr(_rank, "_LINEAR", None)  # plain addmm for the fp32 screen
    assert_same(rank_metrics(qf, gf, qp, gp, qc, gc, screen=screen), ref)


def test_progress_bar(capsys):
    qf, gf, qp, gp, qc, gc = make(1)
    quiet = rank_metrics(qf, gf, qp, gp, qc, gc)  # small work: no bar by default
    assert "query" not in capsys.readouterr().err
    shown = rank_metrics(qf, gf, qp, gp, qc, gc, progress=True, chunk_size=7)
    assert "query" in capsys.readouterr().err
    assert shown.as_dict() == quiet.as_dict() and (shown.cmc == quiet.cmc).all()
    dist = make(5, ng=30)[1]
    curve = distractor_curve(qf, gf, qp, gp, dist, [0, 30], q_camids=qc, g_camids=gc,
                             junk="same_camera", progress=True)  # fmt: skip
    assert "query" in capsys.readouterr().err and curve[0].as_dict() == quiet.as_dict()


def test_pair_distances_bitwise_equal_the_definition():
    """The chunked in-place exact distances are the very float64 values of `exact_sqdist`."""
    g = torch.Generator().manual_seed(2)
    q, gal = torch.randn(30, 512, generator=g), torch.randn(700, 512, generator=g)
    rows, cols = torch.randint(0, 30, (1500,), generator=g), torch.randint(0, 700, (1500,))
    got = _rank.Gallery([gal[:300], gal[300:]]).sqdist(q, rows, cols)
    assert torch.equal(got, _rank.exact_sqdist(q[rows], gal[cols]))
    assert torch.equal(got, _rank.exact_sqdist(q[:, None], gal[None])[rows, cols])


@pytest.mark.parametrize("screen", ["fp32", "bf16", "fp64"])
def test_blocks_with_different_norms(screen):
    """Gallery blocks whose norms differ by orders of magnitude (each block has its own screening
    error); near-ties just above the float32 resolution of the distances."""
    qf, gf, qp, gp, qc, gc = veri_like(12, nq=40, ng=400, dim=32)
    gf[:100] *= 30  # the first block: far larger norms (and error bound) than the rest
    gf[200:220] = gf[300:320] + 1e-6 * torch.randn(20, 32)
    ref = reference(qf, gf, qp, gp, qc, gc)
    assert_same(rank_metrics(qf, gf, qp, gp, qc, gc, screen=screen, gallery_chunk_size=100), ref)
