"""Sect. 5.5's visualisations (notebooks 06-08, vscr_core.paper.explain): the Grad-CAM target and
map statistics, the t-SNE separability numbers, the retrieval ranking against a brute-force argsort,
and the three notebooks executed in the smoke profile with their tables read back and
recomputed from the models."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vscr_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageDataset
from vscr_core.data.types import Sample
from vscr_core.model import VSCRNet
from vscr_core.paper import notebook as nbk
from vscr_core.paper import results
from vscr_core.paper.explain import gradcam, retrieval, shared, tsne


def tiny_model(dilations=(1,)) -> VSCRNet:
    torch.manual_seed(0)
    return VSCRNet(num_ids=3, num_views=4, backbone="resnet18", dilations=dilations,
                   view_adversary=False, embed_dim=16).eval()


# ---------------------------------------------------------------------------------------------
# Fig. 9: Grad-CAM


def test_feature_similarity_target_is_the_cosine():
    ref = torch.randn(16)
    f = torch.randn(16, requires_grad=True)
    score = gradcam.FeatureSimilarityTarget(ref)(f)
    assert torch.isclose(score, F.cosine_similarity(f, ref, dim=0))
    score.backward()  # the score is differentiable in the feature
    assert f.grad is not None and torch.isfinite(f.grad).all()
    with pytest.raises(ValueError, match="size 8 against a reference of size 16"):
        gradcam.FeatureSimilarityTarget(ref)(torch.randn(8))
    with pytest.raises(ValueError, match=r"must be \(D,\)"):
        gradcam.FeatureSimilarityTarget(torch.randn(2, 16))


@pytest.mark.parametrize("dilations", [(1,), (1, 2, 3)])
def test_grad_cam_of_a_tiny_model(dilations):
    model = tiny_model(dilations)
    images = torch.randn(3, 3, 32, 48)
    refs = gradcam.fp32_features(model, torch.randn(3, 3, 32, 48))
    assert refs.shape == (3, 16) and refs.dtype == torch.float32
    cams, grid = gradcam.grad_cam(model, images, refs)
    assert cams.shape == (3, 32, 48) and grid == (2, 3)  # res5 at stride 16 (stride-1 res5)
    assert np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1 + 1e-6
    # the default layer is branch d = 1's last res5 block: the same maps when named explicitly
    again, _ = gradcam.grad_cam(model, images, refs, layer=model.res5_layer(0))
    np.testing.assert_allclose(cams, again, atol=1e-5)
    with pytest.raises(ValueError, match="expected images"):
        gradcam.grad_cam(model, images, refs[:2])


def test_cam_statistics():
    mask = gradcam.center_mask((4, 4))
    assert mask.sum() == 4 and mask[1:3, 1:3].all()
    flat = np.ones((8, 8))
    assert gradcam.cam_center_share(flat) == pytest.approx(0.25)
    assert gradcam.cam_entropy(flat) == pytest.approx(1.0)
    spot = np.zeros((8, 8))
    spot[4, 4] = 1
    assert gradcam.cam_center_share(spot) == 1 and gradcam.cam_entropy(spot) == pytest.approx(0)
    corner = np.zeros((8, 8))
    corner[0, 0] = 1
    assert gradcam.cam_center_share(corner) == 0
    assert np.isnan(gradcam.cam_center_share(np.zeros((4, 4))))
    assert np.isnan(gradcam.cam_entropy(np.zeros((4, 4))))
    with pytest.raises(ValueError, match="central fraction"):
        gradcam.center_mask((4, 4), 1.5)


def test_display_image_undoes_the_normalisation():
    rgb = torch.rand(3, 5, 7)
    out = shared.display_image((rgb - IMAGENET_MEAN) / IMAGENET_STD)
    assert out.shape == (5, 7, 3)
    np.testing.assert_allclose(out, rgb.permute(1, 2, 0).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        shared.display_image(torch.rand(5, 7))


# ---------------------------------------------------------------------------------------------
# Fig. 10: t-SNE


def test_separability_of_clean_and_mixed_clusters():
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(5), 4)
    centres = rng.normal(size=(5, 8)) * 10
    clean = centres[pids] + rng.normal(size=(20, 8)) * 0.01
    s = tsne.separability(clean, pids)
    assert s["knn1_accuracy"] == 1 and s["silhouette"] > 0.9 and s["intra_inter_ratio"] < 0.01
    noise = tsne.separability(rng.normal(size=(20, 8)), pids)
    assert noise["silhouette"] < s["silhouette"] and noise["intra_inter_ratio"] > 0.5
    with pytest.raises(ValueError, match="labels expected"):
        tsne.separability(clean, pids[:5])


def test_pick_identities():
    samples = [Sample(f"{p}_{k}.jpg", p) for p in range(30) for k in range(2)]
    samples.append(Sample("single.jpg", 99))  # one image: cannot be a neighbour of its own id
    picked = tsne.pick_identities(samples, 20, seed=3)
    assert len(picked) == 20 and 99 not in picked and picked == sorted(picked)
    assert picked == tsne.pick_identities(samples, 20, seed=3)
    assert picked != tsne.pick_identities(samples, 20, seed=4)
    assert tsne.pick_identities(samples[:10], 20, seed=0) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n=1"):
        tsne.pick_identities(samples, 1, seed=0)


# ---------------------------------------------------------------------------------------------
# Figs. 11-12: retrieval


def brute_force(q, g, q_pids, g_pids, q_cams=None, g_cams=None, k=10):
    """(top-k indices, first true rank) per query by a plain argsort of all distances."""
    q, g = np.asarray(q, np.float64), np.asarray(g, np.float64)
    d = np.sqrt(((q[:, None] - g[None]) ** 2).sum(-1))
    tops, firsts = [], []
    for i in range(len(q)):
        order = [j for j in np.argsort(d[i], kind="stable")
                 if q_cams is None or not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        tops.append(order[:k])
        hits = [r for r, j in enumerate(order, 1) if g_pids[j] == q_pids[i]]
        firsts.append(hits[0] if hits else 0)
    return tops, firsts


@pytest.mark.parametrize("junk", ["none", "same_camera"])
def test_rank_gallery_against_brute_force(junk):
    rng = np.random.default_rng(1)
    g = rng.normal(size=(40, 6)).astype(np.float32)
    g[7] = g[3]  # a tie: gallery order decides
    q = np.concatenate([rng.normal(size=(9, 6)), g[3:4]]).astype(np.float32)
    g_pids = rng.integers(0, 8, 40)
    g_pids[3], g_pids[7] = 5, 6  # the last query (pid 5) is gallery image 3, tied with 7
    q_pids = np.append(rng.integers(0, 9, 9), 5)
    q_cams, g_cams = rng.integers(0, 2, 10), rng.integers(0, 2, 40)
    cams = (q_cams, g_cams) if junk == "same_camera" else (None, None)
    r = retrieval.rank_gallery(q, g, q_pids, g_pids, q_cams, g_cams, junk=junk, k=10, chunk=3)
    tops, firsts = brute_force(q, g, q_pids, g_pids, *cams)
    assert r.top.tolist() == tops and r.first_true.tolist() == firsts
    if junk == "none":
        assert r.top[-1, :2].tolist() == [3, 7] and r.first_true[-1] == 1
    assert (np.diff(r.top_dist, axis=1) >= 0).all()
    short = retrieval.rank_gallery(q, g[:4], q_pids, g_pids[:4], k=10)
    assert (short.top[:, 4:] == -1).all() and (short.top[:, :4] >= 0).all()
    with pytest.raises(ValueError, match="junk must be"):
        retrieval.rank_gallery(q, g, q_pids, g_pids, junk="camera")
    with pytest.raises(ValueError, match="needs q_camids"):
        retrieval.rank_gallery(q, g, q_pids, g_pids, junk="same_camera")


def fake_result(first_b, first_v, pids) -> retrieval.RetrievalResult:
    n = len(pids)
    query = [Sample(f"/d/q/{i}.jpg", p) for i, p in enumerate(pids)]
    gallery = [Sample(f"/d/g/{p}.jpg", p) for p in sorted(set(pids))]

    def ranking(first):
        return retrieval.Ranking(np.zeros((n, 1), np.int64), np.zeros((n, 1)), np.asarray(first))

    return retrieval.RetrievalResult("fake", query, gallery, {"baseline": ranking(first_b),
                                                              "vscr": ranking(first_v)},
                                     "none", "/d")


def test_select_queries():
    res = fake_result([1, 2, 1, 3, 1, 4, 0, 2], [2, 1, 1, 1, 3, 4, 1, 1],
                      [0, 1, 2, 3, 4, 5, 6, 3])
    picked = retrieval.select_queries(res, 4, seed=0, selection="disagree")
    why = dict(picked)
    assert set(why) == {0, 1, 3, 4} or set(why) == {0, 1, 7, 4}  # ids 3 and 3 are one identity
    assert sorted(why.values()).count("VSCR right, baseline wrong at rank 1") == 2
    random = retrieval.select_queries(res, 3, seed=0, selection="random", exclude=[0, 1])
    assert len(random) == 3 and not {0, 1, 6} & {i for i, _ in random}  # 6: baseline has none
    assert len({res.query[i].pid for i, _ in random}) == 3
    assert retrieval.fig12_selection("veri776") == "random"
    assert retrieval.fig12_selection("synth") == "disagree"
    with pytest.raises(ValueError, match="selection='best'"):
        retrieval.select_queries(res, 2, seed=0, selection="best")
    assert res.rank1("baseline") == pytest.approx(3 / 7) and res.rank1("vscr") == 5 / 8


# ---------------------------------------------------------------------------------------------
# The notebooks, executed in the smoke profile


def smoke_models(out_dir):
    """The models and test split the notebooks used (same out_dir: loaded, not retrained)."""
    run = nbk.NotebookRun("test", "smoke", out_dir=out_dir)
    return run, shared.trained_models(run, progress=False), shared.test_data(run)


def png_ok(out_dir, name):
    assert (out_dir / "figures" / f"{name}.png").stat().st_size > 10_000, name


@pytest.mark.slow
def test_06_gradcam(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    run_notebook("06_gradcam")
    table, meta = results.read_table("fig9_gradcam", out_dir)
    assert meta["notebook"] == "06_gradcam" and meta["profile"] == "smoke"
    run, models, ds = smoke_models(out_dir)
    assert len(table) == min(6, len({s.pid for s in ds.query}))
    assert table["pid"].is_unique
    for m in shared.MODELS:
        assert table[f"{m}_similarity"].between(-1, 1).all()
        for col in (f"{m}_center_share", f"{m}_entropy"):
            assert table[col].dropna().between(0, 1).all()
    # the similarity column, recomputed in fp32 from the images the table names
    root = meta["paths_relative_to"]
    queries = [Sample(os.path.join(root, p), 0) for p in table["query_path"]]
    refs = [Sample(os.path.join(root, p), 0) for p in table["reference_path"]]

    def inputs(samples):
        data = ImageDataset(samples, image_size=run.config.data.image_size)
        return torch.stack([data[i][0] for i in range(len(data))])

    for m, model in models.items():
        f = F.cosine_similarity(gradcam.fp32_features(model, inputs(queries)),
                                gradcam.fp32_features(model, inputs(refs)))
        np.testing.assert_allclose(table[f"{m}_similarity"], f.numpy(), atol=2e-4)
    gallery_pid = {os.path.relpath(g.path, root): g.pid for g in ds.gallery}
    query_pid = {os.path.relpath(q.path, root): q.pid for q in ds.query}
    assert [gallery_pid[p] for p in table["reference_path"]] == table["pid"].tolist()
    assert [query_pid[p] for p in table["query_path"]] == table["pid"].tolist()
    png_ok(out_dir, "fig9_gradcam")


@pytest.mark.slow
def test_07_tsne(notebook_env, run_notebook):
    out_dir, _ = notebook_env
    run_notebook("07_tsne")
    table, meta = results.read_table("fig10_tsne", out_dir)
    assert meta["notebook"] == "07_tsne" and list(table["model"]) == list(shared.MODELS)
    _, models, ds = smoke_models(out_dir)
    pool = ds.query + ds.gallery
    eligible = {p for p in {s.pid for s in pool} if sum(s.pid == p for s in pool) >= 2}
    assert (table["identities"] == min(20, len(eligible))).all()
    pids = [int(p) for p in table["pids"].iloc[0].split()]
    assert len(pids) == table["identities"].iloc[0] and set(pids) <= eligible
    assert (table["images"] == sum(s.pid in pids for s in pool)).all()
    assert table["knn1_accuracy"].between(0, 1).all() and table["silhouette"].between(-1, 1).all()
    assert (table["intra_inter_ratio"] > 0).all()
    png_ok(out_dir, "fig10_tsne")


@pytest.mark.slow
def test_08_retrieval(notebook_env, run_notebook):
    from vscr_core.experiments import features

    out_dir, _ = notebook_env
    run_notebook("08_retrieval")
    fig11, meta11 = results.read_table("fig11_retrieval", out_dir)
    fig12, meta12 = results.read_table("fig12_retrieval", out_dir)
    assert meta11["selection"] == retrieval.SELECTIONS["random"]
    assert meta12["selection"] == retrieval.SELECTIONS["disagree"]  # the synthetic default
    assert not set(fig11["query_index"]) & set(fig12["query_index"])
    run, models, ds = smoke_models(out_dir)
    root = meta11["paths_relative_to"]
    k = min(10, len(ds.gallery))
    q_pids = [s.pid for s in ds.query]
    g_pids = [s.pid for s in ds.gallery]
    g_paths = [os.path.relpath(s.path, root) for s in ds.gallery]
    for m, model in models.items():
        # recomputed from the models' features with a plain argsort: a cross-check that can fail
        tops, firsts = brute_force(features(model, ds.query, run.config, progress=False),
                                   features(model, ds.gallery, run.config, progress=False),
                                   q_pids, g_pids, k=k)
        for table in (fig11, fig12):
            assert len(table) == min(4, len(set(q_pids)))
            for r in table.itertuples():
                i = r.query_index
                assert os.path.relpath(ds.query[i].path, root) == r.query_path
                assert getattr(r, f"{m}_first_true_rank") == firsts[i] >= 1
                shown = getattr(r, f"{m}_top_paths").split(";")
                assert len(shown) == k and shown == [g_paths[j] for j in tops[i]]
                marks = getattr(r, f"{m}_top_true")
                assert marks == "".join("+" if g_pids[j] == q_pids[i] else "-" for j in tops[i])
                assert ("+" in marks) == (firsts[i] <= k)
    b, v = fig12["baseline_first_true_rank"], fig12["vscr_first_true_rank"]
    disagree = fig12["selection"].str.contains("right")
    assert ((b[disagree] == 1) != (v[disagree] == 1)).all()
    for name in ("fig11_retrieval", "fig12_retrieval"):
        png_ok(out_dir, name)
