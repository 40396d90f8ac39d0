"""Training-op accounting: exact MAC and BOP integers for small nets, and the savings formulas."""

import pytest
import torch

from bitcycle.nets import get_model
from bitcycle.nets.layers import BinaryConv2d
from bitcycle.schedule import CyclicSchedule
from bitcycle.train.ops import LayerOps, layer_ops, run_costs

torch.set_num_threads(1)


def test_mlp_layer_macs():
    layers = layer_ops(get_model("sfc", in_features=64, width=16), (1, 8, 8))
    assert [l.macs for l in layers] == [64 * 16, 16 * 16, 16 * 16, 16 * 10]
    assert [l.act_bits for l in layers] == [8, 1, 1, 1]
    assert [l.needs_dx for l in layers] == [False, True, True, True]
    assert all(l.weight_bits == 1 for l in layers)


def test_cnv_layer_macs():
    model = get_model("cnv", input_size=28, in_channels=1, channels=(2, 3, 4, 5, 6), fc=(7, 8))
    layers = layer_ops(model, (1, 28, 28))
    # valid 3×3 convs: 28→26→24 (pool 12)→10→8 (pool 4)→2; FC 6·2·2 → 7 → 8 → 10
    expect = [26 * 26 * 2 * 1 * 9, 24 * 24 * 3 * 2 * 9, 10 * 10 * 4 * 3 * 9, 8 * 8 * 5 * 4 * 9, 2 * 2 * 6 * 5 * 9,
              24 * 7, 7 * 8, 8 * 10]
    assert [l.macs for l in layers] == expect
    assert BinaryConv2d(3, 4, 3).macs((2, 4, 4, 4)) == 2 * 4 * 4 * 4 * 27


def test_run_costs_exact():
    layers = [LayerOps("a", "linear", 100, 1, 8, False), LayerOps("b", "linear", 50, 1, 1, True)]
    bits = [2, 8, 32]
    r = run_costs(layers, bits, 3)
    # BOPs per sample at b: a: 100·(1·8 + 8·b), b: 50·(1 + 1·b + 1·b)
    per = {b: 100 * (8 + 8 * b) + 50 * (1 + 2 * b) for b in (2, 8, 32)}
    assert r["train_bops"] == 3 * (per[2] + per[8] + per[32])
    assert r["fp32_bops"] == 9 * (100 * 2 * 1024 + 50 * 3 * 1024)
    assert r["fixed8_bops"] == 9 * per[8]
    assert r["saving_vs_fp32"] == pytest.approx(1 - r["train_bops"] / r["fp32_bops"])
    # engine: forward planes a: 8, b: 1; backward a: 8·b (x is 8-bit), b: 2·b
    assert r["engine_forward_planes"] == 3 * 3 * (100 * 8 + 50 * 1)
    assert r["engine_backward_planes"] == 3 * sum(100 * 8 * b + 50 * 2 * b for b in bits)
    assert r["engine_backward_planes_fixed8"] == 9 * (100 * 64 + 50 * 16)
    assert r["samples"] == 9 and r["macs_per_sample"] == 150
    assert r["mean_grad_bits"] == 14


def test_cosine_targets_for_lfc():
    """The issue's targets hold by construction of the cost models for the LFC-like MLP."""
    layers = layer_ops(get_model("lfc"), (1, 28, 28))
    sched = CyclicSchedule(2, 8, 8, 4800)
    r = run_costs(layers, sched.bits_list(), 100)
    assert r["engine_backward_saving_vs_fixed8"] >= 0.35
    assert r["saving_vs_fp32"] >= 0.96
    fixed = run_costs(layers, [8] * 4800, 100)
    assert fixed["saving_vs_fixed8"] == 0 and fixed["engine_backward_saving_vs_fixed8"] == 0


def test_per_step_sample_counts():
    layers = [LayerOps("a", "linear", 10, 1, 1, True)]
    assert run_costs(layers, [4, 4], [2, 5])["train_bops"] == 7 * 10 * (1 + 8)


def test_host_scale_multiplies():
    """One host multiply per backward-product output per scale block of its reduction axis."""
    layers = layer_ops(get_model("lfc"), (1, 28, 28))  # 784-1024-1024-1024-10
    assert [(l.positions, l.patch, l.out_channels) for l in layers] == [
        (1, 784, 1024), (1, 1024, 1024), (1, 1024, 1024), (1, 1024, 10)]
    per_step = (784 * 1024 * 16  # layer 0: dW only, 256 samples = 16 blocks of 16
                + 2 * (256 * 1024 * 64 + 1024 * 1024 * 16)  # dx: 1024 channels = 64 blocks; dW: 16 blocks
                + 256 * 1024 * 1 + 10240 * 16)  # 10 output channels = 1 block
    r = run_costs(layers, [2, 32, 8], 256, scale_block=16)
    assert r["host_scale_muls"] == 2 * per_step  # the fp32 step has no scales
    whole_rows = run_costs(layers, [2], 256, scale_block=0)["host_scale_muls"]
    assert whole_rows == 784 * 1024 + 2 * (256 * 1024 + 1024 * 1024) + 256 * 1024 + 10240
    assert 1 / 17 < r["host_scale_muls_per_backward_mac"] < 1 / 15  # ≈ 1/B for an MLP
    conv = layer_ops(get_model("cnv", input_size=28, in_channels=1, width_mult=0.25), (1, 28, 28))
    assert (conv[1].positions, conv[1].patch, conv[1].out_channels) == (24 * 24, 16 * 9, 16)
    # conv lowered im2col style: conv[1] (16 channels = 1 block) has 24·24·16·9 dx results per
    # sample, and 16·16·9 dW results per block of 16 of the batch's 256·24·24 positions
    assert conv[1].scale_muls(256, 16) == 256 * 24 * 24 * 16 * 9 + 16 * 16 * 9 * (256 * 24 * 24 // 16)
    assert 1 / 17 < run_costs(conv, [2], 256, scale_block=16)["host_scale_muls_per_backward_mac"] < 1 / 15
