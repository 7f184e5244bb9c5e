"""GalleryIndex (torch, faiss, brute force, save/load) and extract_features."""

import pytest
import torch

from vscr_core.evaluate import GalleryIndex, extract_features


def brute(q, g, k, metric):
    if metric == "cosine":
        d = 1 - torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T
    else:
        d = torch.cdist(q.double(), g.double()).square().float()
    return d.topk(k, dim=1, largest=False)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_search_matches_brute_force(metric, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    g = torch.Generator().manual_seed(0)
    gal, q = torch.randn(300, 24, generator=g), torch.randn(17, 24, generator=g)
    ref_d, ref_i = brute(q, gal, 10, metric)
    idx, dist = GalleryIndex(gal, metric=metric, backend=backend, memory_mb=1).search(q, 10)
    assert idx.shape == dist.shape == (17, 10) and idx.dtype == torch.int64
    torch.testing.assert_close(dist, ref_d, atol=1e-4, rtol=1e-5)
    assert (idx == ref_i).float().mean() > 0.99  # random features: no near ties expected


def test_torch_search_spans_gallery_blocks(monkeypatch):
    import vscr_core.evaluate as ev

    monkeypatch.setattr(ev, "_GALLERY_BLOCK", 7)
    g = torch.Generator().manual_seed(1)
    gal, q = torch.randn(50, 8, generator=g), torch.randn(5, 8, generator=g)
    idx, dist = GalleryIndex(gal).search(q, 12)
    ref_d, ref_i = brute(q, gal, 12, "euclidean")
    assert torch.equal(idx, ref_i)
    torch.testing.assert_close(dist, ref_d, atol=1e-4, rtol=1e-5)


def test_save_load_round_trip(tmp_path):
    gal = torch.randn(40, 8)
    index = GalleryIndex(gal, metric="cosine")
    index.save(tmp_path / "g.pt")
    again = GalleryIndex.load(tmp_path / "g.pt")
    assert again.metric == "cosine" and len(again) == 40
    q = torch.randn(3, 8)
    torch.testing.assert_close(again.search(q, 5), index.search(q, 5))
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]  # no temp file left behind


def test_load_rejects_foreign_and_corrupt_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a GalleryIndex file"):
        GalleryIndex.load(tmp_path / "other.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="(?s)not a torch file.*expected a GalleryIndex file"):
        GalleryIndex.load(tmp_path / "bad.pt")


def test_search_bad_input():
    index = GalleryIndex(torch.randn(10, 4))
    with pytest.raises(ValueError, match="k must be"):
        index.search(torch.randn(2, 4), 11)
    with pytest.raises(ValueError, match="query_feats has dimension 3"):
        index.search(torch.randn(2, 3), 1)
    with pytest.raises(ValueError, match="backend must be one of"):
        GalleryIndex(torch.randn(10, 4), backend="annoy")


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


class Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], 0, 0, -1, i  # (image, pid, camid, view, index), like ImageDataset


def test_extract_features():
    torch.manual_seed(0)
    model, x = TinyNet().train(), torch.randn(10, 3, 16, 12)
    ref = model.eval()(x).detach()
    model.train()
    fp32 = extract_features(model, Images(x), 4, "cpu", precision="fp32", progress=False)
    assert fp32.dtype == torch.float32 and fp32.shape == (10, 6) and model.training
    torch.testing.assert_close(fp32, ref, atol=1e-5, rtol=1e-5)
    bf16 = extract_features(model, x, 3, "cpu", progress=False)  # auto: bf16 + channels-last
    assert torch.nn.functional.cosine_similarity(bf16, fp32).min() > 0.99
    flip = extract_features(model, x, 4, "cpu", flip=True, precision="fp32", progress=False)
    torch.testing.assert_close(flip, (ref + model.eval()(x.flip(3)).detach()) / 2, atol=1e-5,
                               rtol=1e-5)  # fmt: skip


def test_extract_features_bad_input():
    with pytest.raises(ValueError, match="images must be a float"):
        extract_features(TinyNet(), torch.zeros(2, 1, 4, 4), 2, "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        extract_features(TinyNet(), torch.zeros(2, 3, 4, 4), 2, "cpu", precision="int8")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        extract_features(TinyNet(), torch.zeros(2, 3, 4, 4), 2, "cpu", precision="fp16")
