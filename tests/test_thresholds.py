"""BN + sign → per-channel integer thresholds: bit-exact against the float model on Fashion-MNIST."""

import numpy as np
import pytest
import torch

from bitcycle.golden.thresholds import ALWAYS, NEVER, Thresholds, apply_thresholds, bn_sign_thresholds

torch.set_num_threads(1)
SEED = 77


def test_known_values_and_sign_flip():
    # γ>0: BN(a) = (a − 2.5)/1 + 0 ≥ 0 ⇔ a ≥ 3;  γ<0: −(a − 2.5) ≥ 0 ⇔ a ≤ 2 ⇔ −a ≥ −2
    th = bn_sign_thresholds(mean=[2.5, 2.5], var=[1.0, 1.0], gamma=[1.0, -1.0], beta=[0.0, 0.0], eps=0.0)
    assert th.threshold.tolist() == [3, -2] and th.direction.tolist() == [1, -1]
    acc = np.array([[2, 2], [3, 3]])
    assert apply_thresholds(acc, th).tolist() == [[-1, 1], [1, -1]]
    # BN exactly 0 at an integer → sign(0) = +1 on both sides of the flip
    th = bn_sign_thresholds(mean=[4.0, 4.0], var=[1.0, 1.0], gamma=[2.0, -2.0], beta=[0.0, 0.0], eps=0.0)
    assert apply_thresholds(np.array([[4, 4]]), th).tolist() == [[1, 1]]
    # γ = 0: constant output sign(β)
    th = bn_sign_thresholds(mean=[0.0, 0.0], var=[1.0, 1.0], gamma=[0.0, 0.0], beta=[0.5, -0.5], eps=1e-4)
    assert th.threshold.tolist() == [ALWAYS, NEVER]
    assert apply_thresholds(np.array([[-10**9, 10**9], [10**9, -10**9]]), th).tolist() == [[1, -1], [1, -1]]


def test_clipped_thresholds_keep_the_function():
    rng = np.random.default_rng(SEED)
    c = 64
    th = bn_sign_thresholds(rng.normal(0, 40, c), rng.uniform(1, 900, c), rng.normal(0, 1, c), rng.normal(0, 3, c), 1e-4)
    acc = rng.integers(-100, 101, size=(500, c))
    clipped = th.clipped(-100, 100)
    assert np.all(np.abs(clipped.threshold) <= 101)
    assert np.array_equal(apply_thresholds(acc, th), apply_thresholds(acc, clipped))


def test_ge_form_for_the_engine():
    rng = np.random.default_rng(SEED + 1)
    c = 48
    th = bn_sign_thresholds(rng.normal(0, 20, c), rng.uniform(1, 400, c), rng.normal(0, 1, c), rng.normal(0, 2, c), 1e-4)
    th = th.clipped(-64, 64)
    thr, invert = th.ge_form()
    assert invert.any() and (~invert).any() and np.all(np.abs(thr) <= 66)
    acc = np.repeat(np.arange(-64, 65)[:, None], c, axis=1)
    engine_bit = (acc >= thr[None, :]) ^ invert[None, :]
    assert np.array_equal(np.where(engine_bit, 1, -1), apply_thresholds(acc, th))


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        bn_sign_thresholds([0.0], [1.0, 1.0], [1.0], [0.0], 1e-4)
    th = Thresholds(np.zeros(3, np.int64), np.ones(3, np.int8))
    with pytest.raises(ValueError, match="integers"):
        apply_thresholds(np.zeros((2, 3)), th)
    with pytest.raises(ValueError, match="channels"):
        apply_thresholds(np.zeros((2, 4), np.int64), th)


@pytest.fixture(scope="module")
def fashion():
    from bitcycle.train.data import load_dataset

    return load_dataset("fashion-mnist", train_limit=2000, test_limit=10000, augment=False)


def _calibrated(model, x):
    """Random affine BN parameters (a third of γ negative) and running stats from real data."""
    g = torch.Generator().manual_seed(SEED)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.randn(c, generator=g) * torch.where(torch.rand(c, generator=g) < 0.33, -1.0, 1.0))
                m.bias.copy_(torch.randn(c, generator=g) * 0.5)
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 250):
            model(x[i:i + 250])
    return model.eval()


@pytest.mark.parametrize("name,cfg,n_test", [
    ("tfc", {}, 10000),  # the whole test set
    ("cnv", {"input_size": 28, "in_channels": 1, "width_mult": 0.25}, 1500),  # a slice: conv on 2 shared cores
])
def test_thresholds_bit_exact_vs_float_model_on_test_set(fashion, name, cfg, n_test):
    """Every BN+sign of the float model equals the integer threshold compare, on Fashion-MNIST test images."""
    from bitcycle.nets import get_model

    torch.manual_seed(SEED)
    model = _calibrated(get_model(name, **cfg), fashion.train_x[: 2000 if n_test > 2000 else 500])
    seq = list(model.features if hasattr(model, "features") else [*model.conv_features, *model.linear_features])
    input_step = float(seq[0].act_quant.scale())  # the 8-bit input grid (Q1.7)
    captured = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: captured.__setitem__(k, o.value if hasattr(o, "value") else o))
             for k, m in enumerate(seq)]
    with torch.no_grad():
        model(fashion.test_x[:n_test])
    for h in hooks:
        h.remove()
    checked = flipped = 0
    for k, m in enumerate(seq):
        if not isinstance(m, torch.nn.modules.batchnorm._BatchNorm) or k + 1 >= len(seq):
            continue
        step = input_step if checked == 0 else 1.0  # the first binary layer sees the 8-bit input
        acc = captured[k - 1] / step
        codes = torch.round(acc)
        assert torch.equal(codes, acc)  # the accumulator really is an integer
        th = bn_sign_thresholds(m.running_mean.numpy(), m.running_var.numpy(), m.weight.detach().numpy(),
                                m.bias.detach().numpy(), m.eps, step=step)
        ours = apply_thresholds(codes.to(torch.int64).numpy(), th)
        float_out = captured[k + 1].numpy()  # the sign activation after the BN
        assert np.array_equal(ours, float_out.astype(np.int8)), f"layer {k}: {(ours != float_out).sum()} mismatches"
        checked += 1
        flipped += int((th.direction < 0).sum())
    assert checked >= 3 and flipped > 0
