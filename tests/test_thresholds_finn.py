"""Our golden thresholds and accumulator widths against FINN's own results on an exported zoo MLP.

* BN → thresholds vs FINN's ``Streamline`` (+ XNOR conversion): the same ±1 output for every
  reachable accumulator value of every channel. FINN handles γ < 0 by negating the weight column
  (then thresholds −a, or the popcount of the flipped column); we keep the weights and flip the
  compare direction — different encodings, one function, checked here.
* Accumulator width vs FINN's ``MinimizeAccumulatorWidth``: equal for the 8-bit-input layer. For
  XNOR layers FINN computes the range of Σ w_bipolar·x_binary with x ∈ {0, 1} *for the current
  weights*, giving INT7 for K = 64 — but the XNOR unit counts matches, popcount ∈ [0, K], and
  K = 64 does not fit INT7 (max 63); and the engine, whose weights are rewritten every training
  step, must hold the signed sum 2·popcount − K ∈ [−K, K] for *any* weights: our min_acc_bits gives
  INT8. The test shows the input that overflows FINN's annotation — the too-narrow accumulator,
  also on the last binary layer (noActivation), whose output datatype inherits it.
"""

import numpy as np
import pytest
import torch

from bitcycle.golden.accwidth import min_acc_bits, popcount_bits
from bitcycle.golden.thresholds import apply_thresholds, bn_sign_thresholds

torch.set_num_threads(1)
SEED = 5
pytestmark = pytest.mark.slow  # FINN import + export + streamlining: ~30-50 s on 2 shared cores
WIDTH = 64


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile import passes as P
    from bitcycle.compile.export import export_qonnx, prepare
    from bitcycle.nets import get_model

    torch.manual_seed(SEED)
    model = get_model("tfc", width=WIDTH)
    g = torch.Generator().manual_seed(SEED)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for bn in bns:  # random affine, about half the γ negative, stats from data-like inputs
        with torch.no_grad():
            bn.weight.copy_(torch.randn(WIDTH, generator=g))
            bn.bias.copy_(torch.randn(WIDTH, generator=g) * 0.5)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(100, 784, generator=g))
    model.eval()
    path = export_qonnx(prepare(model, (1, 784)), tmp_path_factory.mktemp("finn") / "tfc.onnx")
    graph = ModelWrapper(str(path))
    for p in [P.CheckSupportedQONNX(), P.TidyUp(), P.AnnotateInput(255.0), P.ToFinn(), P.StreamlineBnn(),
              P.ToXnorPopcount()]:
        graph = graph.transform(p)
    import copy

    xnor = copy.deepcopy(graph)
    hw = graph.transform(P.InferHwLayers())
    return model, bns, xnor, hw


def _layers(model, xnor):
    """(torch ±1 weights [M,K], FINN weight node, FINN MultiThreshold node or None) per binary layer."""
    from bitcycle.nets import binary_layers

    mats = [n for n in xnor.graph.node if n.op_type in ("MatMul", "XnorPopcountMatMul")]
    out = []
    for layer, node in zip(binary_layers(model), mats):
        consumer = xnor.find_consumer(node.output[0])
        thr = consumer if consumer is not None and consumer.op_type == "MultiThreshold" else None
        out.append((torch.where(layer.weight >= 0, 1, -1).numpy(), node, thr))
    return out


def test_bn_thresholds_equal_finn_streamline(flow):
    model, bns, xnor, _ = flow
    input_step = float(model.features[0].act_quant.scale())
    layers = _layers(model, xnor)
    flips_seen = 0
    for i, (bn, (w, node, thr)) in enumerate(zip(bns, layers)):
        assert thr is not None
        k = w.shape[1]
        step = input_step if i == 0 else 1.0
        ours = bn_sign_thresholds(bn.running_mean.numpy(), bn.running_var.numpy(), bn.weight.detach().numpy(),
                                  bn.bias.detach().numpy(), bn.eps, step=step)
        t_finn = xnor.get_initializer(thr.input[1])[:, 0]
        w_finn = xnor.get_initializer(node.input[1])  # [K, M]
        xnor_mode = node.op_type == "XnorPopcountMatMul"
        bipolar_finn = (2 * w_finn - 1) if xnor_mode else w_finn
        flipped = np.all(bipolar_finn.T == -w, axis=1)
        assert np.all(flipped | np.all(bipolar_finn.T == w, axis=1))  # each column is ours or negated
        flips_seen += int(flipped.sum())
        # every reachable accumulator: a ≡ K (mod 2) in [−K, K] for XNOR; a window for the 8-bit layer
        if xnor_mode:
            acc = np.arange(-k, k + 1, 2)
        else:
            centre = np.where(ours.direction > 0, ours.threshold, -ours.threshold)
            acc = np.unique(np.concatenate([np.arange(c - 3, c + 4) for c in centre] +
                                           [np.arange(int(t) - 3, int(t) + 4) for t in t_finn] +
                                           [-np.arange(int(t) - 3, int(t) + 4) for t in t_finn]))
        a = np.repeat(acc[:, None], len(t_finn), axis=1)  # [values, channels]
        ours_out = apply_thresholds(a, ours, channel_axis=1)
        finn_in = np.where(flipped[None, :], -a, a)  # FINN's matmul output for that channel
        if xnor_mode:
            finn_in = (finn_in + k) // 2  # popcount of matches
        finn_out = np.where(finn_in >= t_finn[None, :], 1, -1)  # MultiThreshold, out_bias 0 → {0,1} ↦ ±1
        assert np.array_equal(ours_out, finn_out), f"layer {i}: {(ours_out != finn_out).sum()} values differ"
        assert (ours.direction < 0).any()
    assert flips_seen > 0  # FINN did flip columns for negative γ and we still agree


def test_accumulator_widths_vs_finn_minimize_accumulator_width(flow):
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    model, _, xnor, hw = flow
    mvaus = [getCustomOp(n) for n in hw.graph.node if n.op_type.startswith("MVAU")]
    layers = _layers(model, xnor)
    assert len(mvaus) == len(layers) == 4
    for inst, (w, _, _) in zip(mvaus, layers):
        k = inst.get_nodeattr("MW")
        finn_acc = DataType[inst.get_nodeattr("accDataType")]
        if not inst.get_nodeattr("binaryXnorMode"):
            # 8-bit input × ±1 weights: every row has |w| = 1 everywhere, so FINN's weight-based range
            # is the worst case too, and the widths agree
            assert inst.get_nodeattr("inputDataType") == "INT8"
            assert finn_acc.signed() and finn_acc.bitwidth() == min_acc_bits(k, 8) == 18
            continue
        ours = min_acc_bits(k, 1)
        assert ours == 8 and popcount_bits(k) == 7
        assert finn_acc.name == "INT7"  # FINN's annotation for K = 64
        # the input that matches a weight row everywhere: popcount K, signed sum +K
        x = (w[0] > 0).astype(np.int64)
        popcount = int(np.sum(x == (w[0] > 0)))
        signed_sum = int(w[0] @ (2 * x - 1))
        assert popcount == k and signed_sum == k
        assert not finn_acc.allowed(popcount) and not finn_acc.allowed(signed_sum)  # FINN's width overflows
        assert DataType[f"INT{ours}"].allowed(signed_sum) and DataType[f"INT{ours}"].allowed(-signed_sum)
        if inst.get_nodeattr("noActivation"):
            # the last binary layer: its output datatype is the too-narrow accumulator
            assert inst.get_nodeattr("outputDataType") == "INT7"
