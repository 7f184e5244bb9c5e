"""The losses of Sect. 4: gradient reversal, view loss (Eq. 7), ID losses (Eq. 8-10), MSCL (Eq. 6)
and their weighted sum (Eq. 11)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vscr_core.config import MSCL_REDUCTIONS
from vscr_core.data.types import UNKNOWN


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambd * grad, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by -lambd on the way back (Eq. 3)."""
    return _GradientReversal.apply(x, lambd)


def grl_ramp(progress: float) -> float:
    """Ganin & Lempitsky's (2015) schedule for the reversal scale: 2 / (1 + exp(-10 p)) - 1, from
    0 at the start of training (p = 0) to almost 1 by p = 0.5. With the full scale from the first
    step the adversary blows up the features before the ID losses shape them (quick profile: NaN
    in the second epoch)."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def view_loss(view_logits: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """Eq. 7: binary cross-entropy of each view class against the one-hot view label, summed over
    the n_v classes and averaged over the images whose view is known (UNKNOWN ones are ignored)."""
    known = views != UNKNOWN
    if not known.any():
        return view_logits.sum() * 0.0  # keeps the graph (and DDP's gradient sync) intact
    logits = view_logits[known].float()  # (N, n_v)
    target = F.one_hot(views[known], logits.shape[1]).float()
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(logits)


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, N) Euclidean distances, with a safe gradient at zero distance."""
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.t()).clamp_min(1e-12)
    return d2.sqrt()


def triplet_loss(features: torch.Tensor, pids: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Eq. 10 with batch-hard mining over a PK batch: for each anchor the farthest positive and
    the closest negative (Hermans et al. 2017)."""
    dist = pairwise_euclidean(features.float())  # (N, N)
    same = pids[:, None] == pids[None, :]
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(1)
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def mscl_loss(f: torch.Tensor, side_features: list[torch.Tensor],
              reduction: str = "sum") -> torch.Tensor:
    """Eq. 6, the multi-scale consensus loss: the squared L2 distance between f and each side
    branch's f*_b, summed over side branches and averaged over the batch.

    reduction "sum" sums over the Dim feature dimensions as Eq. 6 is written; "mean" averages
    over them (Eq. 6 / Dim, as torch's MSELoss does), a loss Dim times weaker. Gradients flow
    both ways, so f and f*_b learn from each other.
    """
    if reduction not in MSCL_REDUCTIONS:
        raise ValueError(f"MSCL reduction {reduction!r} is not one of {MSCL_REDUCTIONS}")
    f = f.float()
    per_dim = (lambda d: d.sum(1)) if reduction == "sum" else (lambda d: d.mean(1))
    return sum(per_dim((f - s.float()) ** 2).mean() for s in side_features)


def vscr_loss(
    out,
    pids: torch.Tensor,
    views: torch.Tensor,
    *,
    use_mscl: bool,
    margin: float = 0.3,
    triplet_weight: float = 1.0,
    view_weight: float = 1.0,
    mscl_weight: float = 1.0,
    mscl_reduction: str = "sum",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 11: L = L_c + l1 L_t + l2 L_v + l3 L_s for a `VSCROutput`.

    Every branch gets the ID losses (L_c and L_t summed over branches, as each branch is trained as
    its own ReID head); L_v acts on f only; L_s ties the side branches to f when `use_mscl`.
    Returns the total and its detached parts for logging (no device sync here): "id" (summed
    over branches) and "id_b<k>" per branch, "triplet", "view", "mscl", "total".
    """
    ce_per_branch = [F.cross_entropy(logit.float(), pids) for logit in out.logits]
    ce = sum(ce_per_branch)
    tri = sum(triplet_loss(f, pids, margin) for f in out.features)
    total = ce + triplet_weight * tri
    parts = {"id": ce.detach(), "triplet": tri.detach()}
    parts.update({f"id_b{k}": c.detach() for k, c in enumerate(ce_per_branch)})
    if out.view_logits is not None:
        lv = view_loss(out.view_logits, views)
        total = total + view_weight * lv
        parts["view"] = lv.detach()
    if use_mscl:
        ls = mscl_loss(out.features[0], out.features[1:], mscl_reduction)
        total = total + mscl_weight * ls
        parts["mscl"] = ls.detach()
    parts["total"] = total.detach()
    return total, parts
