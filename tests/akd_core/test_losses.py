"""Golden values for each loss on fixed tensors (worked out by hand below)."""

import math

import pytest
import torch
import torch.nn.functional as F

from akd_core.losses import AnnealingLoss, CrossEntropyLoss, HintonKDLoss

ZS = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
ZT = torch.tensor([[2.0, 4.0, 8.0], [4.0, 0.0, -4.0]])
Y = torch.tensor([2, 0])


def test_annealing_loss_is_mse_on_scaled_raw_logits():
    # phi = 0.5: target [[1,2,4],[2,0,-2]]; squared errors [0,0,1],[4,1,9] -> mean 15/6
    assert AnnealingLoss()(ZS, ZT, 0.5).item() == pytest.approx(15 / 6)
    # phi = 1: raw teacher; errors [1,4,25],[16,1,25] -> 72/6
    assert AnnealingLoss()(ZS, ZT, 1.0).item() == pytest.approx(12.0)


def test_annealing_loss_does_not_backprop_into_teacher():
    zt = ZT.clone().requires_grad_(True)
    zs = ZS.clone().requires_grad_(True)
    AnnealingLoss()(zs, zt, 0.3).backward()
    assert zt.grad is None and zs.grad is not None


def _kl_batchmean(zs, zt, T):
    total = 0.0
    for s, t in zip(zs.tolist(), zt.tolist(), strict=True):
        ps = [math.exp(v / T) for v in s]
        pt = [math.exp(v / T) for v in t]
        ps = [v / sum(ps) for v in ps]
        pt = [v / sum(pt) for v in pt]
        total += sum(b * math.log(b / a) for a, b in zip(ps, pt, strict=True))
    return total / len(zs)


def test_hinton_kd_golden():
    T, alpha = 2.0, 0.7
    ce = F.cross_entropy(ZS, Y).item()
    expected = (1 - alpha) * ce + alpha * T * T * _kl_batchmean(ZS, ZT, T)
    assert HintonKDLoss(T, alpha)(ZS, ZT, Y).item() == pytest.approx(expected, rel=1e-5)


def test_hinton_kd_uses_batchmean_not_class_mean():
    # alpha = 1 leaves T^2 * KL; with "mean" reduction it would be 3x smaller (3 classes).
    got = HintonKDLoss(1.0, 1.0)(ZS, ZT, Y).item()
    assert got == pytest.approx(_kl_batchmean(ZS, ZT, 1.0), rel=1e-5)


def test_cross_entropy_golden():
    # row 1: -log softmax([1,2,3])[2]; row 2: -log softmax([0,-1,1])[0]
    r1 = -3 + math.log(math.e + math.e**2 + math.e**3)
    r2 = -0 + math.log(1 + math.e**-1 + math.e)
    assert CrossEntropyLoss()(ZS, Y).item() == pytest.approx((r1 + r2) / 2, rel=1e-6)
