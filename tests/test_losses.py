"""The losses of Sect. 4 against hand-written references."""

import math

import pytest
import torch

from vscr_core.data.types import UNKNOWN
from vscr_core.losses import grad_reverse, grl_ramp, mscl_loss, triplet_loss, view_loss


@pytest.mark.parametrize("lambd", [0.1, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_negates_scaled_gradient(lambd):
    x = torch.randn(5, 7, requires_grad=True)
    y = grad_reverse(x, lambd)
    assert torch.equal(y, x)
    upstream = torch.randn(5, 7)
    y.backward(upstream)
    torch.testing.assert_close(x.grad, -lambd * upstream)


def test_mscl_is_zero_for_equal_features_and_positive_otherwise():
    f = torch.randn(6, 16)
    assert mscl_loss(f, [f.clone(), f.clone()]).item() == 0.0
    assert mscl_loss(f, [f + 0.1]).item() > 0.0


@pytest.mark.parametrize("reduction, per_dim", [("sum", 1), ("mean", 8)])
def test_mscl_matches_eq6_and_its_gradient(reduction, per_dim):
    f = torch.randn(4, 8, requires_grad=True)
    sides = [torch.randn(4, 8, requires_grad=True) for _ in range(2)]
    loss = mscl_loss(f, sides, reduction)
    # Eq. 6 written out (sum over side branches and dimensions of squared differences), averaged
    # over the batch of 4; "mean" also divides by Dim = 8
    eq6 = sum(sum((f[i, m] - s[i, m]) ** 2 for m in range(8)) for s in sides for i in range(4))
    torch.testing.assert_close(loss, eq6 / 4 / per_dim)
    loss.backward()
    with torch.no_grad():
        torch.testing.assert_close(f.grad, sum(2 * (f - s) for s in sides) / (4 * per_dim))
        for s in sides:
            torch.testing.assert_close(s.grad, 2 * (s - f) / (4 * per_dim))


def test_mscl_rejects_an_unknown_reduction():
    with pytest.raises(ValueError, match="'max'"):
        mscl_loss(torch.zeros(2, 3), [torch.zeros(2, 3)], "max")


def _batch_hard_reference(x, pids, margin):
    n = len(x)
    total = 0.0
    for a in range(n):
        pos = [torch.dist(x[a], x[p]).item() for p in range(n) if pids[p] == pids[a]]
        neg = [torch.dist(x[a], x[q]).item() for q in range(n) if pids[q] != pids[a]]
        total += max(0.0, max(pos) - min(neg) + margin)
    return total / n


@pytest.mark.parametrize("seed", range(5))
def test_batch_hard_triplet_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    pids = torch.arange(4).repeat_interleave(3)
    x = torch.randn(12, 5, generator=g) * 0.3
    got = triplet_loss(x, pids, margin=0.3).item()
    assert got == pytest.approx(_batch_hard_reference(x, pids, 0.3), abs=1e-5)


def test_triplet_is_zero_when_identities_are_far_apart():
    pids = torch.tensor([0, 0, 1, 1])
    x = torch.tensor([[0.0, 0.0], [0.01, 0.0], [10.0, 0.0], [10.0, 0.01]])
    assert triplet_loss(x, pids, margin=0.3).item() == 0.0


def test_view_loss_is_eq7_and_ignores_unknown_views():
    logits = torch.randn(5, 4)
    views = torch.tensor([0, 3, UNKNOWN, 1, 2])
    got = view_loss(logits, views)
    p = torch.sigmoid(logits)
    expected = 0.0
    for i, v in enumerate(views.tolist()):
        if v == UNKNOWN:
            continue
        for c in range(4):
            target = 1.0 if c == v else 0.0
            expected -= target * torch.log(p[i, c]) + (1 - target) * torch.log(1 - p[i, c])
    torch.testing.assert_close(got, expected / 4)
    assert view_loss(logits, torch.full((5,), UNKNOWN)).item() == 0.0


def test_view_loss_is_lowest_for_confident_right_answer():
    views = torch.tensor([0, 1, 2])
    right = torch.full((3, 3), -8.0)
    right[range(3), views] = 8.0
    losses = [view_loss(torch.roll(right, k, dims=1), views).item() for k in range(3)]
    assert losses[0] < 0.01 < min(losses[1:])


def test_grl_ramp_rises_from_zero_to_one():
    values = [grl_ramp(p / 10) for p in range(11)]
    assert values[0] == 0.0 and values == sorted(values) and 0.99 < values[-1] <= 1.0
    assert abs(grl_ramp(0.1) - (2 / (1 + math.exp(-1)) - 1)) < 1e-12
