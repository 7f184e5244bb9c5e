"""VSCRNet: the network of the paper's Fig. 4.

    image -> trunk (ResNet stem + res2..res4, run once per batch)
          -> B copies of res5, stride 1, 3x3 convs dilated d = dilations[b]      (Sect. 4.2.1)
          -> per branch: GAP -> FC 512 (the feature) -> FC num_ids                (Eq. 9)
    f = feature of branch 0 -> gradient reversal -> 2-FC view discriminator       (Sect. 4.2.2)

At inference only f is kept (for Table 2's fused rows: the concatenation of all branch features).
Every row of Table 2 is a configuration of this one class, never a subclass.
"""

from __future__ import annotations

import copy
import dataclasses
import socket
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, Bottleneck

from vscr_core.config import ModelConfig
from vscr_core.files import torch_load
from vscr_core.losses import grad_reverse

# name -> (torchvision constructor, ImageNet weights enum, res5 output channels)
BACKBONES = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512),
    "resnet34": (models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1, 512),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1, 2048),
    "resnet101": (models.resnet101, models.ResNet101_Weights.IMAGENET1K_V1, 2048),
}


class VSCROutput(NamedTuple):
    """What a training-mode forward returns."""

    features: list[torch.Tensor]  # per branch (B, embed_dim); features[0] is f
    logits: list[torch.Tensor]  # per branch (B, num_ids)
    view_logits: torch.Tensor | None  # (B, num_views) from the discriminator, None without it


class DilatedBlock(nn.Module):
    """Runs a torchvision residual block with its 3x3 convs at `dilation`.

    It holds a reference to the block, so branches that share res5 weights (Table 2 b, c) wrap
    the same blocks with different rates; each wrapper stays a module that hooks (Grad-CAM) see.
    """

    def __init__(self, block: BasicBlock | Bottleneck, dilation: int):
        super().__init__()
        self.block = block
        self.dilation = dilation

    def _conv3x3(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, padding=d, dilation=d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        identity = x if b.downsample is None else b.downsample(x)
        if isinstance(b, Bottleneck):
            out = b.relu(b.bn1(b.conv1(x)))
            out = b.relu(b.bn2(self._conv3x3(b.conv2, out)))
            out = b.bn3(b.conv3(out))
        else:
            out = b.relu(b.bn1(self._conv3x3(b.conv1, x)))
            out = b.bn2(self._conv3x3(b.conv2, out))
        return b.relu(out + identity)


class EmbeddingHead(nn.Module):
    """GAP -> FC embed_dim (the feature) -> FC num_ids, the two FC layers of Sect. 4.2.1.

    No normalisation layer after the first FC: the paper names none, and with one the MSCL of
    Eq. 6 could not shrink the features to agree, only rotate them.
    """

    def __init__(self, in_channels: int, embed_dim: int, num_ids: int):
        super().__init__()
        # PyTorch's default init for the feature layer keeps f small at the start, so the
        # squared distances of Eq. 6 start small too; a He init makes MSCL's first gradients
        # thousands of times larger than the ID losses' and training diverges.
        self.embed = nn.Linear(in_channels, embed_dim)
        self.classifier = nn.Linear(embed_dim, num_ids)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.embed(fmap.mean(dim=(2, 3)))  # (B, embed_dim)


class ViewDiscriminator(nn.Module):
    """D_v: two FC layers predicting the view from f (behind the gradient reversal layer)."""

    def __init__(self, embed_dim: int, num_views: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embed_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_views)
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)  # (B, num_views)


def feature_dim(embed_dim: int, dilations, fuse: bool) -> int:
    """Width of the ReID feature: f alone, or every branch's feature concatenated when fused."""
    return embed_dim * (len(dilations) if fuse else 1)


class VSCRNet(nn.Module):
    def __init__(
        self,
        num_ids: int,
        num_views: int = 4,
        backbone: str = "resnet50",
        dilations: tuple[int, ...] = (1, 2, 3),
        share_branches: bool = False,
        fuse: bool = False,
        view_adversary: bool = True,
        embed_dim: int = 512,
        pretrained: str | None = None,
        grl_lambda: float = 1.0,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
        if num_ids < 2:
            raise ValueError(f"num_ids must be at least 2, got {num_ids}")
        self.dilations = tuple(dilations)
        self.fuse = fuse
        self.grl_lambda = grl_lambda
        self.embed_dim = embed_dim

        resnet = BACKBONES[backbone][0](weights=None)
        if pretrained is not None:
            state = load_imagenet_weights(backbone, pretrained)
            missing, _ = resnet.load_state_dict(state, strict=False)
            if any(not k.startswith("fc.") for k in missing):
                raise ValueError(f"weights ({pretrained}) lack trunk parameters, e.g. {missing[0]}")
        # 1. Shared trunk: stem and res2..res4, computed once per batch.
        self.trunk = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
            resnet.layer1, resnet.layer2, resnet.layer3,
        )
        # 2. res5 with its last spatial down-sampling removed (stride 1), as in the paper.
        res5 = resnet.layer4
        first = res5[0]
        (first.conv2 if isinstance(first, Bottleneck) else first.conv1).stride = (1, 1)
        first.downsample[0].stride = (1, 1)
        # 3. One res5 per branch (or one shared), each run at its branch's dilation.
        copies = [res5] + ([] if share_branches else [copy.deepcopy(res5) for _ in dilations[1:]])
        self.branches = nn.ModuleList(
            nn.Sequential(*(DilatedBlock(blk, d) for blk in copies[0 if share_branches else b]))
            for b, d in enumerate(self.dilations)
        )
        channels = BACKBONES[backbone][2]
        # 4. Heads, and the view adversary on f. Drawn in this order, with the discriminator
        # drawn from a forked generator, so that under one seed every variant starts from the
        # same weights in the parts it shares with another (paired comparisons, issue 10).
        head_f = EmbeddingHead(channels, embed_dim, num_ids)
        with torch.random.fork_rng(devices=[]):
            self.view_discriminator = (
                ViewDiscriminator(embed_dim, num_views) if view_adversary else None
            )
        side_heads = [EmbeddingHead(channels, embed_dim, num_ids) for _ in dilations[1:]]
        self.heads = nn.ModuleList([head_f, *side_heads])

    @classmethod
    def from_config(cls, cfg: ModelConfig, num_ids: int) -> VSCRNet:
        """The network a `ModelConfig` describes, for `num_ids` training identities."""
        return cls(num_ids, **dataclasses.asdict(cfg))

    @property
    def uses_mscl(self) -> bool:
        """MSCL ties the side branches to f, unless the branches are fused for ReID instead."""
        return not self.fuse and len(self.dilations) > 1

    @property
    def feature_dim(self) -> int:
        return feature_dim(self.embed_dim, self.dilations, self.fuse)

    def forward(self, x: torch.Tensor) -> torch.Tensor | VSCROutput:
        fmap = self.trunk(x)  # (B, C4, H/16, W/16)
        if not self.training:
            # Inference drops side branches (MSCL) or concatenates them (fused rows).
            used = range(len(self.branches)) if self.fuse else range(1)
            feats = [self.heads[b](self.branches[b](fmap)) for b in used]
            return torch.cat(feats, dim=1)  # (B, feature_dim)
        feats = [head(branch(fmap)) for branch, head in zip(self.branches, self.heads)]
        logits = [head.classifier(f) for head, f in zip(self.heads, feats)]
        view_logits = None
        if self.view_discriminator is not None:
            view_logits = self.view_discriminator(grad_reverse(feats[0], self.grl_lambda))
        return VSCROutput(feats, logits, view_logits)

    def res5_layer(self, branch: int = 0) -> nn.Module:
        """The last res5 block of a branch (the paper's res5c), e.g. the Grad-CAM target layer."""
        return self.branches[branch][-1]


def load_imagenet_weights(backbone: str, pretrained: str) -> dict[str, torch.Tensor]:
    """ImageNet weights for the trunk: torchvision's weights API ("imagenet") or a local file.

    Without network access torchvision cannot download; the error then says which file to fetch
    and where to put it (torchvision looks in the torch hub cache before downloading).
    """
    weights = BACKBONES[backbone][1]
    if pretrained != "imagenet":
        state = torch_load(pretrained, f"{backbone} weights (a torchvision state dict)")
    else:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)  # fail fast where there is no network
        try:
            state = weights.get_state_dict(progress=True)
        except OSError as e:
            raise RuntimeError(
                f"could not download ImageNet weights for {backbone} ({e}). Download\n"
                f"  {weights.url}\nand put it at\n  {cache}\n"
                f"or pass pretrained=<path to that file>."
            ) from e
        finally:
            socket.setdefaulttimeout(old_timeout)
    if not isinstance(state, dict) or "layer4.0.conv1.weight" not in state:
        raise ValueError(f"weights for {backbone} ({pretrained}) are not a torchvision ResNet "
                         "state dict (no 'layer4.0.conv1.weight')")
    reference = BACKBONES[backbone][0](weights=None).state_dict()
    for key, value in state.items():
        if key in reference and not key.startswith("fc.") and value.shape != reference[key].shape:
            raise ValueError(f"weights ({pretrained}) do not fit {backbone}: {key} has shape "
                             f"{tuple(value.shape)}, expected {tuple(reference[key].shape)}")
    return {k: v for k, v in state.items() if not k.startswith("fc.")}
