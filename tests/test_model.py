"""VSCRNet: every Table 2 row is a config with the right feature width; the trunk runs once."""

import dataclasses
import inspect

import pytest
import torch
from torchvision import models

from vscr_core.config import ModelConfig
from vscr_core.model import VSCRNet

# Table 2 of the paper: (row, dilations, weight sharing, fused) -> width of the ReID feature
TABLE2 = [
    ("a", (1,), False, False, 512),
    ("b", (1, 2), True, True, 1024),
    ("c", (1, 2), True, False, 512),
    ("d", (1, 2), False, True, 1024),
    ("e", (1, 2), False, False, 512),
    ("f", (1, 2, 3), False, True, 1536),
    ("g", (1, 2, 3), False, False, 512),
    ("h", (1, 2, 3, 4), False, False, 512),
]


@pytest.mark.parametrize("row, dilations, share, fuse, width", TABLE2)
def test_every_table2_row_builds_and_gives_its_feature_width(row, dilations, share, fuse, width):
    cfg = ModelConfig(backbone="resnet18", dilations=dilations, share_branches=share, fuse=fuse,
                      pretrained=None)
    model = VSCRNet.from_config(cfg, 7)
    x = torch.randn(4, 3, 64, 64)
    out = model.train()(x)
    assert len(out.features) == len(out.logits) == len(dilations)
    assert all(f.shape == (4, 512) for f in out.features)
    assert all(logit.shape == (4, 7) for logit in out.logits)
    assert out.view_logits.shape == (4, 4)
    assert model.uses_mscl == (len(dilations) > 1 and not fuse)
    with torch.no_grad():
        assert model.eval()(x).shape == (4, width) and model.feature_dim == width


def test_from_config_builds_what_the_keyword_constructor_builds():
    cfg = ModelConfig(backbone="resnet18", dilations=(1, 3), num_views=3, embed_dim=64,
                      view_adversary=True, grl_lambda=0.5, pretrained=None)
    torch.manual_seed(0)
    a = VSCRNet.from_config(cfg, 9)
    torch.manual_seed(0)
    b = VSCRNet(9, backbone="resnet18", dilations=(1, 3), num_views=3, embed_dim=64,
                grl_lambda=0.5)
    assert a.dilations == b.dilations and a.grl_lambda == b.grl_lambda == 0.5
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    keywords = set(inspect.signature(VSCRNet).parameters) - {"num_ids"}
    assert keywords == {f.name for f in dataclasses.fields(ModelConfig)}


def test_shared_branches_share_res5_weights_but_not_their_dilation():
    shared = VSCRNet(5, backbone="resnet18", dilations=(1, 2, 3), share_branches=True)
    separate = VSCRNet(5, backbone="resnet18", dilations=(1, 2, 3))
    res5 = sum(p.numel() for p in models.resnet18().layer4.parameters())
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    assert n_separate - n_shared == 2 * res5
    assert shared.branches[0][0].block is shared.branches[2][0].block
    fmap = torch.randn(2, 256, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(shared.branches[0](fmap), shared.branches[1](fmap))


def test_res5_has_stride_one_and_trunk_runs_once_per_batch():
    model = VSCRNet(5, backbone="resnet50", dilations=(1, 2, 3)).train()
    calls = []
    model.trunk.register_forward_hook(lambda *_: calls.append(1))
    shapes = []
    model.res5_layer(0).register_forward_hook(lambda m, i, o: shapes.append(o.shape))
    model(torch.randn(2, 3, 64, 96))
    assert len(calls) == 1
    assert shapes[0] == (2, 2048, 4, 6)  # H/16 x W/16: the last down-sampling is gone


def test_dilated_branch_equals_torchvision_block_with_that_dilation():
    model = VSCRNet(5, backbone="resnet18", dilations=(1, 3), view_adversary=False).eval()
    # torchvision's res5 with the same weights, stride 1 and dilation 3 in every 3x3 conv
    reference = models.resnet18().layer4
    for blk, ours in zip(reference, model.branches[1]):
        blk.load_state_dict(ours.block.state_dict())
        for conv in (blk.conv1, blk.conv2):
            conv.dilation, conv.padding = (3, 3), (3, 3)
    reference[0].conv1.stride = (1, 1)
    reference[0].downsample[0].stride = (1, 1)
    reference.eval()
    fmap = torch.randn(2, 256, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.branches[1](fmap), reference(fmap))


def test_no_view_discriminator_without_adversary():
    model = VSCRNet(5, backbone="resnet18", view_adversary=False).train()
    assert model(torch.randn(2, 3, 32, 32)).view_logits is None


def test_local_pretrained_file_is_loaded_and_foreign_file_refused(tmp_path):
    reference = models.resnet18()
    good = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), good)
    model = VSCRNet(5, backbone="resnet18", pretrained=str(good))
    torch.testing.assert_close(model.trunk[0].weight, reference.conv1.weight)
    torch.testing.assert_close(model.branches[0][1].block.conv2.weight,
                               reference.layer4[1].conv2.weight)
    foreign = tmp_path / "r50.pth"
    torch.save(models.resnet50().state_dict(), foreign)
    with pytest.raises(ValueError, match="r50.pth.*do not fit resnet18"):
        VSCRNet(5, backbone="resnet18", pretrained=str(foreign))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        VSCRNet(5, backbone="resnet18", pretrained=str(tmp_path / "missing.pth"))


def test_imagenet_without_network_names_the_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as err:
        VSCRNet(5, backbone="resnet18", pretrained="imagenet")
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="backbone"):
        VSCRNet(5, backbone="vgg16")
    with pytest.raises(ValueError, match="num_ids"):
        VSCRNet(1)
