"""CycleBNN's forward-precision variant: b-bit uniform W/A in training, binary afterwards and in eval."""

import pytest
import torch

from bitcycle.errors import BitCycleError
from bitcycle.nets import binary_layers, get_model
from bitcycle.quant.forward import set_forward_bits, uniform_quant_ste
from bitcycle.train.data import load_dataset
from bitcycle.train.ops import LayerOps, run_costs
from bitcycle.train.trainer import TrainConfig, train

torch.set_num_threads(1)


def test_uniform_levels_and_ste():
    x = torch.tensor([-2.0, -0.9, -0.2, 0.0, 0.1, 0.4, 0.99, 3.0], requires_grad=True)
    q = uniform_quant_ste(x, 3)  # levels k/3
    assert torch.equal(q.detach() * 3, torch.tensor([-3.0, -3.0, -1.0, 0.0, 0.0, 1.0, 3.0, 3.0]))
    q.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1, 1, 1, 1, 1, 1, 0]))  # clamped outside [−1, 1]


def test_training_forward_uses_b_bits_eval_stays_binary():
    torch.manual_seed(0)
    model = get_model("sfc", width=16, in_features=64)
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        model.train()
        binary = model(x)
        assert set_forward_bits(model, 4) == 7  # 4 binary layers + 3 sign activations
        four_bit = model(x)
        model.eval()
        eval_out = model(x)
        set_forward_bits(model, 1)
        assert torch.equal(model(x), eval_out)
    assert not torch.allclose(binary, four_bit)
    assert all(l.forward_bits == 1 for l in binary_layers(model))
    with pytest.raises(BitCycleError):
        set_forward_bits(model, 17)


def test_ops_with_forward_bits():
    layers = [LayerOps("a", "linear", 100, 1, 8, False), LayerOps("b", "linear", 50, 1, 1, True)]
    r = run_costs(layers, [4, 4], 2, forward_bits_per_step=[3, 1])
    # step 1 (b_f = 3): a: 100·(3·8 + 8·4), b: 50·(3·3 + 3·4 + 3·4); step 2 (binary): a: 100·(8 + 32), b: 50·9
    assert r["train_bops"] == 2 * (100 * (24 + 32) + 50 * (9 + 24) + 100 * 40 + 50 * 9)
    assert r["mean_forward_bits"] == 2


def test_trainer_forward_cycle(tmp_path):
    data = load_dataset("digits", train_limit=256, test_limit=64)
    cfg = TrainConfig(model="sfc", model_cfg={"width": 16}, grad_bits="fixed:8", forward_bits="cosine:2-8x1",
                      forward_fraction=0.5, epochs=2, batch_size=32, seed=1)
    m = train(cfg, tmp_path / "f", progress=False, data=data)
    fb = m["forward_bits_per_step"]
    assert len(fb) == 16 and fb[8:] == [1] * 8 and fb[0] == 2 and max(fb[:8]) >= 7
    assert "forward_bits" in (tmp_path / "f" / "metrics.csv").read_text().splitlines()[0]
    with pytest.raises(BitCycleError, match="exclude each other"):
        TrainConfig(forward_bits="fixed:4", memory_efficient=True).check()
    with pytest.raises(BitCycleError, match="up to 16 bits"):
        TrainConfig(forward_bits="fp32").check()
