"""The compile flow: export, FINN passes bit-exact vs torch at every executable stage,
BitCycle's BitSerialMVAU custom op (golden execution, resource/cycle model, code generation),
folding legality and infeasibility, the build directory, and bad-input errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError

torch.set_num_threads(1)
PART = "xc7z020clg400-1"
ROOT = Path(__file__).resolve().parents[1]


def _randomise_bn(model, seed=0):
    """Untrained BN stats make every sign the same; spread them so thresholds matter."""
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = mod.num_features
            mod.running_mean.copy_((torch.rand(n, generator=gen) - 0.5) * 10)
            mod.running_var.copy_(torch.rand(n, generator=gen) * 19 + 1)
            mod.weight.data.copy_(torch.rand(n, generator=gen) * 2 - 1)
            mod.bias.data.copy_(torch.rand(n, generator=gen) * 2 - 1)
    return model.eval()


@pytest.fixture(scope="module")
def digits_pixels():
    from sklearn.datasets import load_digits

    seed = int(os.environ.get("BITCYCLE_SEED", "1234"))
    print(f"seed={seed}")
    imgs = load_digits().images.astype(np.float32)  # codes 0..16
    idx = np.random.default_rng(seed).choice(len(imgs), 120, replace=False)
    return imgs[idx].reshape(-1, 1, 8, 8)


@pytest.fixture(scope="module")
def mlp_flow(tmp_path_factory, digits_pixels):
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.export import export_qonnx, prepare
    from bitcycle.compile.flow import run_flow
    from bitcycle.nets import get_model

    torch.manual_seed(0)
    model = _randomise_bn(get_model("tfc", in_features=64, width=32))
    exported = prepare(model, (1, 1, 8, 8), pixel_max=16)
    expected = exported.integer_outputs(digits_pixels)
    path = export_qonnx(exported, tmp_path_factory.mktemp("mlp") / "m.onnx")
    result = run_flow(ModelWrapper(str(path)), 16, digits_pixels, expected, PART, {"target_fps": 200_000},
                      progress=False)
    return exported, expected, result


def test_every_stage_bit_exact_on_120_images(mlp_flow):
    _, expected, result = mlp_flow
    assert np.array_equal(expected, np.round(expected))  # integer logits
    assert len(set(map(tuple, expected))) > 10  # the images give different outputs: the check has teeth
    for name in ("qonnx", "finn", "streamlined", "xnor", "hw", "engine"):
        assert result.stages[name]["checked"] == 120, name
        assert result.stages[name]["mismatches"] == 0
    assert result.stages["hw"]["nodes"].count("MVAU") == 4
    assert result.stages["engine"]["nodes"].count("BitSerialMVAU") == 4
    assert "MVAU" not in result.stages["engine"]["nodes"]
    assert result.stages["folded"]["nodes"].count("BitSerialMVAU_rtl") == 4  # SpecializeLayers picked our RTL


def test_engine_graph_runs_through_golden_model(mlp_flow, digits_pixels):
    """The engine graph's matrix layers call bitcycle.golden.bitserial_matmul; check a layer by hand."""
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.flow import execute
    from bitcycle.golden import bitserial_matmul

    _, expected, result = mlp_flow
    model = result.engine_model
    assert np.array_equal(execute(model, digits_pixels[:20]), expected[:20])
    last = [n for n in model.graph.node if n.op_type == "BitSerialMVAU"][-1]
    inst = getCustomOp(last)
    assert inst.get_nodeattr("noActivation") == 1 and inst.get_nodeattr("bits") == 1
    w = model.get_initializer(last.input[1])
    assert set(np.unique(w)) == {-1.0, 1.0}
    x = np.where(np.random.default_rng(1).random((w.shape[0], 5)) > 0.5, 1, -1)
    ctx = {last.input[0]: ((x.T + 1) // 2).astype(np.float32), last.input[1]: w,
           last.output[0]: np.zeros((5, w.shape[1]), np.float32)}
    inst.set_nodeattr("numInputVectors", [5])
    inst.execute_node(ctx, model.graph)
    assert np.array_equal(ctx[last.output[0]], bitserial_matmul(w.T.astype(np.int8), x, 1).T)


def test_bitserial_mvau_attributes_cycles_and_acc_width(mlp_flow):
    from qonnx.custom_op.registry import getCustomOp

    _, _, result = mlp_flow
    nodes = [getCustomOp(n) for n in result.model.graph.node if n.op_type == "BitSerialMVAU_rtl"]
    first = nodes[0]
    assert first.get_nodeattr("bits") == 8  # INT8 input quantiser → 8-bit integer operand
    assert (first.get_nodeattr("bits_min"), first.get_nodeattr("bits_max")) == (1, 16)
    # 64 terms of ±1·int8 (|x| ≤ 128): |s| ≤ 8192 → 15 signed bits
    assert first.get_nodeattr("acc_bits") == 15
    assert nodes[1].get_nodeattr("acc_bits") == 7  # 32 bipolar terms: |s| ≤ 32 → 7 bits
    for n in nodes:
        mh, mw, pe, simd = (n.get_nodeattr(k) for k in ("MH", "MW", "PE", "SIMD"))
        assert mh % pe == 0 and mw % simd == 0 and pe & (pe - 1) == 0 and simd & (simd - 1) == 0
        assert n.get_exp_cycles() == n.get_nodeattr("bits") * (mh // pe) * (mw // simd)
        assert n.cycles_at(4) == 4 * (mh // pe) * (mw // simd)  # cost follows the run-time width
    assert max(n.get_exp_cycles() for n in nodes) <= 100e6 / 200_000


def test_bitserial_mvau_rejects_bad_bits_range(mlp_flow):
    from qonnx.custom_op.registry import getCustomOp

    _, _, result = mlp_flow
    node = next(n for n in result.engine_model.graph.node if n.op_type == "BitSerialMVAU")
    inst = getCustomOp(node)
    assert not any("bits range" in m for m in inst.verify_node())
    inst.set_nodeattr("bits_max", 4)
    inst.set_nodeattr("bits", 8)
    assert any("bits range" in m for m in inst.verify_node())
    inst.set_nodeattr("bits_max", 16)


def test_weight_image_tiles():
    from bitcycle.compile.customop import weight_mem_text

    w = -np.ones((4, 2), dtype=np.int8)  # [MW=4, MH=2]
    w[0, 0] = 1  # row 0, lane 0
    w[3, 1] = 1  # row 1, lane 3
    lines = weight_mem_text(w, pe=2, simd=2).split()
    # tiles: (nf=0, sf=0) rows 0..1 × lanes 0..1, then (nf=0, sf=1) lanes 2..3
    assert lines == [f"{0b0001:01x}", f"{0b1000:01x}"]


def test_folding_for_target_and_budget_is_legal_and_monotone(mlp_flow):
    import copy

    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.folding import FoldForTarget, resource_report

    _, _, result = mlp_flow
    base = result.model
    slow = copy.deepcopy(base).transform(FoldForTarget(PART, target_fps=1_000))
    fast = copy.deepcopy(base).transform(FoldForTarget(PART, target_fps=500_000))
    r_slow, r_fast = resource_report(slow, PART), resource_report(fast, PART)
    assert r_fast["images_per_s"] >= 500_000 > r_slow["cycles_per_image"]
    assert r_fast["total"]["LUT"] > r_slow["total"]["LUT"]
    budget = r_slow["total"]["LUT"] + 200
    within = copy.deepcopy(base).transform(FoldForTarget(PART, lut_budget=budget))
    assert resource_report(within, PART)["total"]["LUT"] <= budget
    for n in within.graph.node:
        if n.op_type.startswith(("MVAU", "BitSerialMVAU")):
            inst = getCustomOp(n)
            assert inst.get_nodeattr("MH") % inst.get_nodeattr("PE") == 0
            assert inst.get_nodeattr("MW") % inst.get_nodeattr("SIMD") == 0


def test_folding_trades_luts_for_block_ram_or_dsps_layer_by_layer():
    """The pick is the fewest LUTs meeting the cycle target; where block RAM or DSPs run out, the
    layer that saves them for the fewest extra LUTs per unit moves first, and never into more of
    the other scarce resource."""
    from bitcycle.compile.folding import Choice, _cheapest_meeting, _trade_luts_for

    wide = Choice({"PE": 64}, cycles=100, lut=1000, bram18=114)   # shallow, wide ROM: block RAM heavy
    in_luts = Choice({"PE": 64, "wrom_lut_pe": 64}, cycles=100, lut=5000, bram18=0)
    deep = Choice({"PE": 32}, cycles=100, lut=1100, bram18=30)
    slow = Choice({"PE": 1}, cycles=900, lut=100, bram18=30)
    many_dsp = Choice({"PE": 256}, cycles=100, lut=900, bram18=30, dsp=256)
    assert _cheapest_meeting([slow, wide, deep], 100) is wide
    assert _cheapest_meeting([slow, wide, deep, many_dsp], 100) is many_dsp
    assert _cheapest_meeting([slow, wide, deep], 99) is None
    a, b = [slow, wide, deep, in_luts], [slow, wide, in_luts]
    # 228 BRAM18 over 200: layer 0 saves 84 for 100 LUTs (deep), layer 1 114 for 4000 (in LUTs)
    assert _trade_luts_for("bram18", [wide, wide], [a, b], 100, 200) == [deep, wide]
    assert _trade_luts_for("bram18", [wide, wide], [a, b], 100, 100) == [deep, in_luts]
    assert _trade_luts_for("bram18", [wide, wide], [a, b], 100, 10) == [in_luts, in_luts]
    assert _trade_luts_for("bram18", [wide, wide], [a, b], 100, 0) == [in_luts, in_luts]  # best it can
    assert _trade_luts_for("bram18", [wide], [a], 99, 0) == [wide]  # nothing else meets the target
    # DSPs: the DSP-free choice, not one that takes more block RAM (wide) though it has fewer LUTs
    assert _trade_luts_for("dsp", [many_dsp], [[wide, deep, many_dsp]], 100, 0) == [deep]


def test_infeasible_folding_names_the_layer(mlp_flow):
    import copy

    from bitcycle.compile.folding import FoldForTarget

    _, _, result = mlp_flow
    with pytest.raises(BitCycleError, match=r"folding infeasible: layer \S+ needs \d+ cycles"):
        copy.deepcopy(result.model).transform(FoldForTarget(PART, target_fps=1e9))
    with pytest.raises(BitCycleError, match=r"LUTs \(--lut-budget 10 less the other nodes.\)"):
        copy.deepcopy(result.model).transform(FoldForTarget(PART, lut_budget=10))


def test_resources_report_totals(mlp_flow):
    rep = mlp_flow[2].resources
    assert rep["capacity"] == {"LUT": 53_200, "BRAM36": 140, "DSP": 220}
    assert rep["total"]["LUT"] == sum(l["LUT"] for l in rep["layers"])
    assert rep["total"]["BRAM36"] == -(-sum(l["BRAM_18K"] for l in rep["layers"]) // 2)
    assert rep["fits"] is True


def test_unstreamlinable_and_unsupported_models_are_named(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.export import export_qonnx, prepare
    from bitcycle.compile.flow import run_flow
    from bitcycle.nets.layers import BinaryLinear

    class FloatLayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(x.reshape(x.shape[0], -1))

    ex = prepare(FloatLayer().eval(), (1, 16), pixel_max=16)
    path = export_qonnx(ex, tmp_path / "f.onnx")
    with pytest.raises(BitCycleError, match=r"(float weights|cannot compile)"):
        run_flow(ModelWrapper(str(path)), 16, np.zeros((0, 16)), np.zeros((0, 4)), PART, {"target_fps": 1}, progress=False)

    class Residual(torch.nn.Module):  # binary layers with a float skip connection: not streamlinable
        def __init__(self):
            super().__init__()
            from bitcycle.nets.layers import binary_act, input_quant

            self.q, self.fc, self.act, self.fc2 = input_quant(8), BinaryLinear(16, 16), binary_act(), BinaryLinear(16, 4)
            self.bn = torch.nn.BatchNorm1d(16)

        def forward(self, x):
            x = self.q(2 * x.reshape(x.shape[0], -1) - 1)
            h = self.act(self.bn(self.fc(x)))
            return self.fc2(h + x)

    ex = prepare(Residual().eval(), (1, 16), pixel_max=16)
    path = export_qonnx(ex, tmp_path / "r.onnx")
    with pytest.raises(BitCycleError, match=r"node \S+ \(\w+\)"):
        run_flow(ModelWrapper(str(path)), 16, np.zeros((0, 16)), np.zeros((0, 4)), PART, {"target_fps": 1}, progress=False)


def test_input_quantiser_in_fabric_or_on_host(digits_pixels, tmp_path):
    """Both placements of the 8-bit input quantiser are bit-exact; on the host it leaves the dataflow."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.export import export_qonnx, prepare
    from bitcycle.compile.flow import run_flow
    from bitcycle.nets import get_model

    torch.manual_seed(3)
    model = _randomise_bn(get_model("tfc", in_features=64, width=16, depth=1), seed=3)
    exported = prepare(model, (1, 1, 8, 8), pixel_max=16)
    pixels = digits_pixels[:100]
    expected = exported.integer_outputs(pixels)
    path = export_qonnx(exported, tmp_path / "m.onnx")
    nodes = {}
    for where in ("host", "fabric"):
        r = run_flow(ModelWrapper(str(path)), 16, pixels, expected, PART, {"target_fps": 10_000}, progress=False,
                     input_quant=where)
        assert r.stages["engine"]["checked"] == 100
        nodes[where] = r.stages["folded"]["nodes"]
    assert "MultiThreshold" in nodes["host"] and not any(n.startswith("Thresholding") for n in nodes["host"])
    assert any(n.startswith("Thresholding") for n in nodes["fabric"])
