"""Memory-efficient mode on zoo models: same forward, same gradients (bit for bit), measured savings."""

import copy

import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.nets import get_model
from bitcycle.quant.grad import seed_grad_quant, set_grad_bits, set_grad_scale
from bitcycle.quant.memory import packed_max_pool2d, packed_operand_linear, shape_only_avg_pool2d
from bitcycle.train.memory import compare, measure_step, measure_saved_bytes, set_memory_efficient

torch.set_num_threads(1)
SEED = 2024


def _grads(model, x, y):
    model.zero_grad(set_to_none=True)
    out = model(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name,cfg,shape", [
    ("tfc", {}, (32, 784)),
    ("cnv", {"input_size": 28, "in_channels": 1, "width_mult": 0.125}, (8, 1, 28, 28)),
    ("resnet", {"input_size": 16, "in_channels": 1, "width_mult": 0.5, "blocks_per_stage": 1}, (6, 1, 16, 16)),
])
def test_zoo_model_gradients_match_standard(name, cfg, shape):
    print("seed", SEED)
    torch.manual_seed(SEED)
    standard = get_model(name, **cfg).train()
    efficient = copy.deepcopy(standard)
    switched = set_memory_efficient(efficient)
    assert switched
    g = torch.Generator().manual_seed(SEED)
    x, y = torch.rand(shape, generator=g), torch.randint(0, 10, (shape[0],), generator=g)
    out_s, grads_s = _grads(standard, x, y)
    out_e, grads_e = _grads(efficient, x, y)
    assert efficient.memory_fallbacks == set()
    # torch's own BN kernels + exact integer matmuls: bit-identical, not merely close
    assert torch.equal(out_e, out_s)
    assert grads_s.keys() == grads_e.keys()
    for k in grads_s:
        assert torch.equal(grads_e[k], grads_s[k]), k
    for (k, a), b in zip(standard.state_dict().items(), efficient.state_dict().values()):
        assert torch.equal(a, b), k  # running stats updated alike
    # switching off restores the class behaviour exactly
    set_memory_efficient(efficient, enabled=False)
    assert not any("_bitcycle_memory_efficient" in vars(m) and vars(m)["_bitcycle_memory_efficient"] for m in efficient.modules())


@pytest.mark.parametrize("scale", ["row", "tensor"])
def test_quantised_gradients_match_standard(scale):
    """With 3-bit gradients the memory-efficient products quantise dy exactly as the standard ones."""
    torch.manual_seed(SEED)
    standard = get_model("cnv", input_size=28, in_channels=1, width_mult=0.125).train()
    efficient = copy.deepcopy(standard)
    set_memory_efficient(efficient)
    for model in (standard, efficient):
        set_grad_scale(model, scale)
        set_grad_bits(model, 3)
        seed_grad_quant(model, 11)
    g = torch.Generator().manual_seed(SEED)
    x, y = torch.rand((8, 1, 28, 28), generator=g), torch.randint(0, 10, (8,), generator=g)
    _, grads_s = _grads(standard, x, y)
    _, grads_e = _grads(efficient, x, y)
    assert grads_s.keys() == grads_e.keys()
    for k in grads_s:
        assert torch.equal(grads_e[k], grads_s[k]), k


def test_saved_bytes_are_measured_not_estimated():
    """A hand-countable case: one packed linear layer keeps ⌈N·K/8⌉ + ⌈M·K/8⌉ bytes, nothing else."""
    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(3, 20))

        def forward(self, x):
            w = self.weight + (torch.sign(self.weight) - self.weight).detach()  # ±1, identity STE, saves nothing
            return packed_operand_linear(x, w)

    model = torch.nn.Sequential(Packed())
    x = torch.where(torch.rand(10, 20) < 0.5, -1.0, 1.0).requires_grad_(True)
    per_layer = measure_saved_bytes(model, lambda: model(x).sum())
    # packed x: 200 bits → 25 bytes; packed sign(W): 60 bits → 8 bytes
    assert dict(per_layer) == {"0": {"bytes": 33, "tensors": 2, "kinds": {"uint8": 33}}}
    assert model[0].weight.grad is not None and x.grad is not None  # the backward ran


def test_ratio_targets_at_batch_100():
    for name, target in (("sfc", 3.0), ("cnv", 4.0)):
        s = measure_step(name, 100, False)
        e = measure_step(name, 100, True)
        c = compare(s, e)
        assert c["efficient_bytes"] > 0 and c["fallbacks"] == []
        assert c["ratio"] >= target, (name, c["ratio"])


def test_unsupported_input_is_named():
    with pytest.raises(BitCycleError, match="features.9"):
        packed_operand_linear(torch.randn(4, 8, requires_grad=True), torch.ones(3, 8, requires_grad=True), where="features.9")
    with pytest.raises(BitCycleError, match="no BinaryLinear"):
        set_memory_efficient(torch.nn.Sequential(torch.nn.Linear(3, 3)))


def test_max_pool_routes_gradients_like_torch():
    g = torch.Generator().manual_seed(SEED)
    x = torch.where(torch.rand(2, 3, 6, 6, generator=g) < 0.3, 1.0, -1.0)
    dy = torch.randint(-5, 5, (2, 3, 3, 3), generator=g).float()
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.nn.functional.max_pool2d(a, 2).backward(dy)
    packed_max_pool2d(b, 2, None, 0, 1, False).backward(dy)
    assert torch.equal(a.grad, b.grad)


def test_shape_only_avg_pool_equals_torch():
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(2, 3, 7, 7, generator=g)
    dy = torch.randn(2, 3, 3, 3, generator=g)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.nn.functional.avg_pool2d(a, 2).backward(dy)
    out = shape_only_avg_pool2d(b, 2)
    out.backward(dy)
    assert torch.equal(out, torch.nn.functional.avg_pool2d(x, 2)) and torch.equal(a.grad, b.grad)
