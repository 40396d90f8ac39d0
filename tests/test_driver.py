"""The driver on the ``emu`` backend: exact products, the training step, bad input, driver.json.

The emu device parses the engine's stream packets itself, so these tests exercise the driver's
register programming, packing and job splitting exactly as the RTL and the board see them.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bitcycle.driver import Accelerator, spec_for_model
from bitcycle.hwif import driver_json as DJ
from bitcycle.hwif import regmap
from bitcycle.driver import protocol as P
from bitcycle.hwif.driver_json import EngineSpec
from bitcycle.driver.hostmath import quantize_grad
from bitcycle.errors import BitCycleError
from bitcycle.golden import bitserial_matmul, int_range
from bitcycle.golden import stream as S

SEED = random.SystemRandom().randrange(1 << 30)
print(f"test_driver seed {SEED}")

# geometries: the default, and tiny memories that force the driver to split every job
GEOMETRIES = [
    dict(pe=4, simd=16, stream_bytes=4),
    dict(pe=2, simd=8, stream_bytes=8, weight_words=5, act_tiles=3, max_chunks=2),
    dict(pe=8, simd=32, stream_bytes=4, weight_words=4, act_tiles=4, max_chunks=3),
]


def small_acc(geometry=None, hidden=(20, 12), **kw) -> Accelerator:
    spec = spec_for_model("mlp", hidden=list(hidden), engine=EngineSpec(**(geometry or {})))
    return Accelerator("emu", driver_json=spec, **kw)


def random_ints(rng, bits, shape):
    if bits == 1:
        return rng.choice([-1, 1], shape)
    lo, hi = int_range(bits)
    return rng.integers(lo, hi + 1, shape)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=["default", "tiny-pe2", "tiny-pe8"])
def test_matmul_equals_golden(geometry):
    rng = np.random.default_rng(SEED)
    acc = small_acc(geometry)
    for _ in range(25):
        bits = int(rng.integers(1, 17))
        m, k, n = (int(v) for v in rng.integers(1, 60, 3))
        binary = rng.choice([-1, 1], (m, k)).astype(np.int8)
        ints = random_ints(rng, bits, (k, n))
        got = acc.matmul(binary, ints, bits)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, bitserial_matmul(binary, ints, bits), err_msg=f"bits={bits} {m}x{k}x{n}")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=["default", "tiny-pe2", "tiny-pe8"])
def test_layer_products_exact(geometry):
    rng = np.random.default_rng(SEED + 1)
    acc = small_acc(geometry)
    w0 = acc.sign_w[0].astype(np.int64)
    x = rng.integers(-128, 128, (64, 7))
    np.testing.assert_array_equal(acc.forward_layer(0, x), w0 @ x)
    dy = rng.integers(-7, 8, (20, 7))
    np.testing.assert_array_equal(acc.backward_data(0, dy, 4), w0.T @ dy)
    # layer 0's 8-bit input: weight gradient from bipolar bit-plane passes, exact
    np.testing.assert_array_equal(acc.weight_grad(x, dy, 8, 4), dy @ x.T)
    sx = rng.choice([-1, 1], (20, 9)).astype(np.int8)
    dy2 = rng.integers(-7, 8, (12, 9))
    np.testing.assert_array_equal(acc.weight_grad(sx, dy2, 1, 4), dy2 @ sx.T.astype(np.int64))


def test_reductions_split_to_fit_the_accumulator():
    """A narrow accumulator: the driver cuts reductions so the engine never flags OVERFLOW, sums exact."""
    rng = np.random.default_rng(SEED + 9)
    acc = small_acc(dict(pe=4, simd=16, acc_bits=16), hidden=(300, 12))
    b = rng.choice([-1, 1], (5, 300)).astype(np.int8)
    x = rng.integers(-128, 128, (300, 4))
    acc.counters(reset=True)
    np.testing.assert_array_equal(acc.matmul(b, x, 8), bitserial_matmul(b, x, 8))
    assert acc.counters()["jobs"]["BACKWARD_WEIGHT"] == 2  # 300 > (2^15 − 1) / 2^7 = 255
    w1 = acc.sign_w[1].astype(np.int64)
    dy = rng.integers(-128, 128, (12, 3))
    np.testing.assert_array_equal(acc.backward_data(1, np.ones((12, 3), np.int64), 8), w1.T @ np.ones((12, 3)))
    x1 = rng.choice([-1, 1], (300, 3))
    np.testing.assert_array_equal(acc.forward_layer(1, x1), w1 @ x1)
    with pytest.raises(BitCycleError, match="ACC_BITS=16 cannot hold"):
        acc.matmul(b, np.zeros((300, 1), np.int64), 16)
    del dy


def test_written_weights_are_used():
    rng = np.random.default_rng(SEED + 2)
    acc = small_acc(GEOMETRIES[1])
    w = rng.choice([-1, 1], (12, 20)).astype(np.int8)
    acc.write_weights("fc1", w)
    x = rng.choice([-1, 1], (20, 5))
    np.testing.assert_array_equal(acc.forward_layer("fc1", x, 1), w.astype(np.int64) @ x)
    w2 = -w
    acc.write_weights(1, w2)  # resident block is rewritten at once
    np.testing.assert_array_equal(acc.forward_layer(1, x, 1), w2.astype(np.int64) @ x)


def test_engine_stream_words_match_golden_stream():
    """The driver's packets are exactly golden/stream.py's (its own tile packer is a vectorised twin)."""
    rng = np.random.default_rng(SEED + 3)
    for pe, simd, dw in ((4, 16, 32), (2, 8, 64), (32, 32, 32), (1, 1, 32)):
        geo = S.Geometry(pe=pe, simd=simd, data_width=dw)
        for _ in range(5):
            b = rng.choice([-1, 1], tuple(int(v) for v in rng.integers(1, 50, 2))).astype(np.int8)
            np.testing.assert_array_equal(P.pack_binary_tiles(b, geo), S.pack_binary_tiles(b, geo))


def test_cycle_counters_follow_bits():
    # whole rows per job (block scales split the 20 rows at 16); W in the weight memory, not streamed
    acc = small_acc(grad_block=0, stream_weights=False)
    rng = np.random.default_rng(SEED + 4)
    x = rng.choice([-1, 1], (20, 16)).astype(np.int8)
    cycles = {}
    acc.backward_data(0, random_ints(rng, 2, (20, 16)), 2)  # loads layer 0's weights once
    for bits in (2, 4, 8):
        acc.counters(reset=True)
        acc.backward_data(0, random_ints(rng, bits, (20, 16)), bits)
        c = acc.counters()
        assert c["jobs"]["BACKWARD_DATA"] == 1 and c["jobs"]["LOAD_WEIGHTS"] == 0
        cycles[bits] = c["cycles"]["BACKWARD_DATA"]
        # 20 rows / PE 4 = 5 chunks; 64 outputs / SIMD 16 = 4 lane groups; 16 vectors
        assert cycles[bits] == bits * 5 * 4 * 16 + 8
        assert c["bytes_sent"] == 4 * S.input_words(S.MODE_BACKWARD_DATA, acc.geo, 20, 64, 16, bits)
    del x


def test_train_step_deterministic_and_learns():
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data / 16.0, d.target
    runs = []
    for _ in range(2):
        acc = small_acc(hidden=(32, 32), seed=3, lr=0.02)
        acc.set_bits(4)
        losses = []
        for s in range(40):
            idx = np.arange(s * 32, s * 32 + 32) % 1400
            losses.append(acc.train_step(x[idx], y[idx])["loss"])
        runs.append((losses, [w.copy() for w in acc.sign_w], acc.evaluate(x[1400:], y[1400:])))
    (l1, w1, a1), (l2, w2, a2) = runs
    assert l1 == l2 and a1 == a2
    for u, v in zip(w1, w2):
        np.testing.assert_array_equal(u, v)
    assert np.mean(l1[-10:]) < 0.7 * np.mean(l1[:5])
    assert a1 > 0.55  # one seed of 40 steps (mean over 5 seeds 0.63) of a 64-32-32-10 binary MLP on digits; chance is 0.1


def test_quantize_grad_unbiased_and_in_range():
    rng = np.random.default_rng(SEED + 5)
    g = rng.normal(size=(20, 30))
    amax = np.abs(g).max()
    n = 400
    for bits in (1, 2, 4, 8):
        q, s = quantize_grad(g, bits, rng)
        lo, hi = (-1, 1) if bits == 1 else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
        assert q.min() >= lo and q.max() <= hi and q.dtype == np.int64
        assert s == (amax if bits == 1 else amax / hi)
        mean = np.mean([quantize_grad(g, bits, rng)[0] for _ in range(n)], axis=0) * s
        # stochastic rounding: per-sample variance <= s²/4 (bits >= 2) or amax² (bits = 1); 6 sigma
        sigma = (amax if bits == 1 else s / 2) / np.sqrt(n)
        assert np.abs(mean - g).max() < 6 * sigma


def test_quantize_grad_row_scales():
    """keep_axis: one scale per index of that axis, each slice using its full code range."""
    rng = np.random.default_rng(SEED + 6)
    g = rng.normal(size=(6, 40)) * np.logspace(-3, 2, 6)[:, None]
    g[2] = 0.0
    for bits in (1, 2, 5):
        q, s = quantize_grad(g, bits, rng, keep_axis=0)
        qmax = 1 if bits == 1 else 2 ** (bits - 1) - 1
        assert s.shape == (6, 1) and s[2, 0] == 0.0 and np.abs(q).max() <= qmax
        live = [0, 1, 3, 4, 5]
        assert np.array_equal(np.abs(q[live]).max(axis=1), np.full(5, qmax))
        np.testing.assert_allclose(s[live, 0], np.abs(g[live]).max(axis=1) / qmax)
        q, s = quantize_grad(g, bits, rng, keep_axis=1)
        assert s.shape == (1, 40)
        assert bits == 1 or not q[2].any()  # b ≥ 2 has a zero code; b = 1 is ±1, unbiased on average


@pytest.mark.parametrize("keep,block_axis,block", [(None, None, 0), (0, None, 0), (1, None, 0), (0, 1, 16), (1, 0, 5)])
def test_numpy_quantiser_scales_equal_torch(keep, block_axis, block):
    """The driver's numpy quantiser and bitcycle train's torch one pick the same scales."""
    import torch

    from bitcycle.quant.grad import quantise_grad

    rng = np.random.default_rng(SEED + 7)
    g = rng.normal(size=(23, 37)) * np.logspace(-2, 1, 37)
    g[4] = 0.0
    for bits in (2, 5):
        _, s_np = quantize_grad(g, bits, rng, keep_axis=keep, block_axis=block_axis, block=block)
        _, s_t = quantise_grad(torch.from_numpy(g).float(), bits, None, keep_dim=keep, block_dim=block_axis, block=block)
        np.testing.assert_allclose(np.broadcast_to(s_np, np.broadcast_shapes(np.shape(s_np), s_t.shape)),
                                   np.broadcast_to(s_t.numpy(), np.broadcast_shapes(np.shape(s_np), s_t.shape)), rtol=1e-6)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=["default", "tiny-pe2", "tiny-pe8"])
def test_block_scaled_backward_data(geometry):
    """With grad_block B every BACKWARD_DATA job sums rows of one scale block: dx = Σ_blocks s·(Wᵀq)."""
    rng = np.random.default_rng(SEED + 8)
    acc = small_acc(geometry, hidden=(40, 12), grad_block=8)
    w = rng.choice([-1, 1], (40, 64)).astype(np.int8)
    acc.write_weights(0, w)
    q = random_ints(rng, 3, (40, 6))
    scales = np.repeat(rng.random((5, 6)), 8, axis=0)  # one scale per (8-row block, sample)
    got = acc.backward_data(0, q, 3, row_scales=scales)
    want = sum((w[r:r + 8].T.astype(np.int64) @ q[r:r + 8]) * scales[r] for r in range(0, 40, 8))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert all(r0 // 8 == (r1 - 1) // 8 for r0, r1, _, _ in acc._weight_blocks(40, 64, 1, 8))  # no job spans two blocks


def test_schedule_drives_bits():
    from bitcycle.schedule import CyclicSchedule

    acc = small_acc()
    sched = CyclicSchedule(2, 8, 2, 10)
    acc.set_schedule(sched)
    rng = np.random.default_rng(0)
    bits = [acc.train_step(rng.random((16, 64)), rng.integers(0, 10, 16))["grad_bits"] for _ in range(10)]
    assert bits == [sched.bits(t) for t in range(10)]


# -- bad input ---------------------------------------------------------------------------------

def test_bad_bits_and_shapes():
    acc = small_acc()
    b = np.ones((3, 4), np.int8)
    x = np.ones((4, 2), np.int64)
    for bits in (0, 17, 2.5, True):
        with pytest.raises(BitCycleError, match="outside the engine's range"):
            acc.matmul(b, x, bits)
    with pytest.raises(BitCycleError, match="K"):
        acc.matmul(b, np.ones((5, 2), np.int64), 2)
    with pytest.raises(BitCycleError, match="do not fit"):
        acc.matmul(b, np.full((4, 2), 9), 4)
    with pytest.raises(BitCycleError, match=r"input must be \[64, N\]"):
        acc.forward_layer(0, np.ones((63, 2), np.int64))
    with pytest.raises(BitCycleError, match="got shape"):
        acc.write_weights(0, np.ones((20, 63), np.int8))
    with pytest.raises(BitCycleError, match="no layer named"):
        acc.write_weights("fc9", np.ones((20, 64), np.int8))
    with pytest.raises(BitCycleError, match="grad_bits"):
        acc.set_bits(12)
    with pytest.raises(BitCycleError, match="features per sample"):
        acc.train_step(np.zeros((4, 10)), np.zeros(4, int))
    with pytest.raises(BitCycleError, match="labels must be in"):
        acc.train_step(np.zeros((4, 64)), np.array([0, 1, 2, 10]))
    # still usable after all of that
    np.testing.assert_array_equal(acc.matmul(b, x, 2), b.astype(np.int64) @ x)


def test_engine_error_register_reaches_user_and_recovers():
    acc = small_acc()
    # a configuration the engine rejects: bits out of range straight into the register
    with pytest.raises(BitCycleError, match="bits out of range"):
        acc._job(P.Mode.FORWARD, 0, 4, 4, 1, np.zeros(1, np.uint64), n_out=1)
    # a short packet: the engine flags it and sends nothing; the driver's wait ends, not hangs
    words = acc._pack(P.Mode.FORWARD, 4, ints=np.ones((64, 3), np.int64))
    acc.resident = None
    acc._make_resident(0, (0, 20, 0, 64))
    with pytest.raises(BitCycleError, match="shorter than the job"):
        acc._job(P.Mode.FORWARD, 4, 20, 64, 3, words[:-1], n_out=S.output_words(0, acc.geo, 20, 64, 3))
    with pytest.raises(BitCycleError, match="longer than the job"):
        acc._job(P.Mode.FORWARD, 4, 20, 64, 3, np.concatenate([words, words[:1]]),
                 n_out=S.output_words(0, acc.geo, 20, 64, 3))
    assert not acc.reg_read("STATUS") & P.STATUS_BUSY  # aborted, idle
    x = np.ones((64, 3), np.int64)
    np.testing.assert_array_equal(acc.forward_layer(0, x, 4), acc.sign_w[0].astype(np.int64) @ x)


def test_timeout_is_an_error_and_engine_stays_usable():
    class HangOnce:
        """Wraps the emu transport; the first compute transfer never completes (until an ABORT)."""

        def __init__(self, inner):
            self.inner, self.armed, self.hanging = inner, False, False

        def reg_write(self, name, value):
            if name == "CTRL" and value & P.CTRL_ABORT:
                self.hanging = False
            self.inner.reg_write(name, value)

        def reg_read(self, name):
            if name == "STATUS" and self.hanging:
                return P.STATUS_BUSY
            return self.inner.reg_read(name)

        def stream(self, words, n_out, timeout):
            if self.armed and n_out:
                self.armed, self.hanging = False, True
                return np.zeros(n_out, np.uint64)
            return self.inner.stream(words, n_out, timeout)

        def close(self):
            pass

    from bitcycle.driver.transport import EmuTransport

    spec = spec_for_model("mlp", hidden=[20, 12])
    hang = HangOnce(EmuTransport(spec.engine))
    acc = Accelerator("emu", driver_json=spec, transport=hang, timeout=0.05)
    hang.armed = True
    x = np.ones((64, 2), np.int64)
    with pytest.raises(BitCycleError, match="did not finish within 0.05 s"):
        acc.forward_layer(0, x, 2)
    np.testing.assert_array_equal(acc.forward_layer(0, x, 2), acc.sign_w[0].astype(np.int64) @ x)


def test_overlay_id_mismatch():
    spec = spec_for_model("mlp", hidden=[20, 12])
    spec.engine.id = 0x12345678
    with pytest.raises(BitCycleError, match="overlay is engine ID .* but driver.json expects 0x12345678"):
        Accelerator("emu", driver_json=spec)
    spec = spec_for_model("mlp", hidden=[20, 12])
    from bitcycle.driver.transport import EmuTransport

    other = EmuTransport(EngineSpec(pe=8))
    with pytest.raises(BitCycleError, match=r"built with other parameters than .*PE=8 \(driver.json: 4\)"):
        Accelerator("emu", driver_json=spec, transport=other)
    # an engine v1.0 (no packed results) would ignore OUT_CFG.RES_W: refused before any job
    old = EmuTransport(spec.engine)
    old.device.regs["VERSION"] = 1 << regmap.FIELDS["VERSION"]["MAJOR"][0]
    with pytest.raises(BitCycleError, match=r"overlay is engine v1\.0, this driver needs v1\.1 or later"):
        Accelerator("emu", driver_json=spec, transport=old)


def test_driver_speaks_the_generated_register_map():
    from bitcycle.driver import registers

    registers.check_bits()
    addr = registers.addresses()
    assert addr["CTRL"] == regmap.CTRL_ADDR and addr["CYCLES"] == regmap.CYCLES_ADDR
    for bit, name in zip([P.ERR_BAD_MODE, P.ERR_BAD_BITS, P.ERR_BAD_SHAPE, P.ERR_BAD_ACC_BITS, P.ERR_OVERFLOW,
                          P.ERR_BAD_OUT_SEL, P.ERR_STREAM_SHORT, P.ERR_STREAM_LONG], list(regmap.FIELDS["ERROR"])):
        assert bit == 1 << regmap.FIELDS["ERROR"][name][0], name
    assert [m.value for m in P.Mode] == [regmap.ENUMS["MODE.MODE"][m.name] for m in P.Mode]
    assert DJ.ENGINE_ID == regmap.ID_VALUE


def test_unknown_backend_and_no_model():
    with pytest.raises(BitCycleError, match="unknown backend"):
        Accelerator("fpga")
    acc = Accelerator("emu")
    with pytest.raises(BitCycleError, match="no model loaded"):
        acc.matmul(np.ones((1, 1), np.int8), np.ones((1, 1), np.int64), 2)


def test_pynq_backend_off_board_fails_at_construction():
    with pytest.raises(BitCycleError) as err:
        Accelerator("pynq", driver_json=spec_for_model("mlp", hidden=[20, 12]))
    msg = str(err.value)
    assert msg.startswith("no PYNQ device found") and "\n" not in msg


# -- driver.json -------------------------------------------------------------------------------

def test_driver_json_roundtrip(tmp_path):
    spec = spec_for_model("sfc", "digits")
    path = spec.save(tmp_path / "driver.json")
    again = DJ.load(tmp_path)
    assert again.to_dict() == spec.to_dict()
    assert [l.in_bits for l in again.layers] == [8, 1, 1, 1]
    assert again.layers[-1].act == "none" and again.classes == 10
    assert json.loads(path.read_text())["schema"] == DJ.SCHEMA


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema="other/9"), "this driver reads"),
    (lambda d: d.update(colour=1), "unknown keys"),
    (lambda d: d["layers"][1].update(in_features=7), "previous layer gives"),
    (lambda d: d["layers"][1].update(in_bits=4), "in_bits must be 1"),
    (lambda d: d["layers"][0].update(in_bits=17), "in_bits=17"),
    (lambda d: d["engine"].update(simd=12), "power of two"),
    (lambda d: d["engine"].update(stream_bytes=2), "4 or 8"),
    (lambda d: d.update(classes=9), "classes=9"),
    (lambda d: d["layers"][-1].update(act="sign"), "act 'none'"),
    (lambda d: d.update(grad_bits={"min": 9, "max": 4}), "grad_bits"),
    (lambda d: d["layers"][0].pop("name"), "missing 'name'"),
    (lambda d: d["input"].update(features="64"), "must be an integer"),
])
def test_driver_json_rejects(mutate, message):
    d = spec_for_model("sfc", "digits").to_dict()
    mutate(d)
    with pytest.raises(BitCycleError, match=message):
        DJ.from_dict(d)


def test_driver_json_missing_and_broken(tmp_path):
    with pytest.raises(BitCycleError, match="not found"):
        DJ.load(tmp_path / "nope.json")
    (tmp_path / "driver.json").write_text("{ not json")
    with pytest.raises(BitCycleError, match="not valid JSON"):
        DJ.load(tmp_path)


def test_params_save_load_roundtrip(tmp_path):
    acc = small_acc(seed=5)
    rng = np.random.default_rng(1)
    acc.set_bits(4)
    for _ in range(3):
        acc.train_step(rng.random((16, 64)), rng.integers(0, 10, 16))
    acc.save_params(tmp_path / "params.npz")
    spec = acc.spec
    spec.params = "params.npz"
    spec.save(tmp_path / "driver.json")
    x = rng.random((10, 64))
    other = Accelerator("emu", driver_json=tmp_path / "driver.json", seed=99)
    np.testing.assert_array_equal(other.forward(x), acc.forward(x))


def test_driver_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, bitcycle.driver, bitcycle.driver.runcli, bitcycle.driver.pynq_backend, bitcycle.golden, "
            "bitcycle.schedule, bitcycle.driver.data; "
            "bad = [m for m in ('torch', 'finn', 'brevitas', 'qonnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- CLI and the board install -------------------------------------------------------------------

def test_run_cli_writes_metrics(tmp_path, capsys):
    from bitcycle.cli import main

    out = tmp_path / "run"
    rc = main(["run", "--steps", "4", "--hidden", "16,16", "--batch-size", "16", "--grad-bits", "cosine:2-6x2",
               "--out", str(out), "--quiet", "--test-limit", "50"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["backend"] == "emu" and m["steps"] == 4 and 0.0 <= m["test_accuracy"] <= 1.0
    assert [h for h in (out / "history.csv").read_text().splitlines()[1:]].__len__() == 4
    assert m["engine_cycles_total"] > 0 and m["bytes_sent"] > 0 and len(m["weights_sha256"]) == 64
    again = DJ.load(out / "driver.json")  # the trained model, loadable by the driver
    assert again.params == "params.npz" and (out / "params.npz").is_file()
    assert "| test accuracy |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--grad-bits", "cosine:9-2x1"], "b_min=9 > b_max=2"),
    (["--grad-bits", "fp32"], "no meaning on the engine"),
    (["--grad-bits", "cosine:2-12x2"], "driver.json allows 2..8"),
    (["--backend", "pynq"], "no PYNQ device found"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--model", "huge"], "unknown model 'huge'"),
    (["--grad-block", "-1"], "grad_block -1 must be an integer >= 0"),
])
def test_run_cli_bad_input(tmp_path, capsys, argv, message):
    from bitcycle.cli import main

    base = ["run", "--steps", "8", "--hidden", "16,16", "--out", str(tmp_path / "r"), "--quiet"]
    if "--model" in argv:
        base = [a for a in base if a not in ("--hidden", "16,16")]
    if "--grad-bits" in argv and argv[1] == "cosine:2-12x2":
        base += ["--driver-json", str(spec_for_model("mlp", hidden=[16, 16]).save(tmp_path / "d.json"))]
    rc = main(base + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err


def test_board_install_path_without_torch(tmp_path):
    """On a board image there is no torch/FINN/scikit-learn: the driver, the packaged digits and `bitcycle run` work."""
    import subprocess
    import sys

    code = f"""
import sys, importlib.abc
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('torch', 'finn', 'brevitas', 'qonnx', 'onnx', 'cocotb', 'sklearn', 'scipy'):
            raise ImportError('not on the board image: ' + name)
sys.meta_path.insert(0, NoTorch())
from bitcycle.driver.data import load
x, y, xt, yt, source = load('digits')
assert source == 'bitcycle.data digits.npz' and x.shape == (1438, 64) and xt.shape == (359, 64), (source, x.shape)
from bitcycle.cli import main
rc = main(['run', '--steps', '8', '--hidden', '16,16', '--batch-size', '16', '--out', {str(tmp_path / 'b')!r},
           '--quiet', '--test-limit', '40'])
assert rc == 0
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["data_source"] == "bitcycle.data digits.npz"


def test_bench_driver_writes_json_and_table(tmp_path):
    from bitcycle.cli import main

    rc = main(["bench", "driver", "--hidden", "16,16", "--bits", "2,8", "--emu-steps", "2", "--sim-steps", "0",
               "--torch-steps", "2", "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "driver.json").read_text())
    rows = {r["bits"]: r for r in data["driver"]}
    assert set(rows) == {2, 8} and all(r["backend"] == "emu" for r in rows.values())
    # the engine's cost follows the gradient bit-width
    assert rows[8]["cycles_per_step"] > rows[2]["cycles_per_step"]
    p = rows[2]["board_ms"]
    assert rows[2]["board_total_ms"] == pytest.approx(sum(p.values())) and p["engine"] > 0 and p["host"] > 0
    assert rows[2]["dma_transfers"] == rows[2]["cache_syncs"] > 0
    assert [t["bits"] for t in data["torch_cpu"]] == [2, 8] and data["torch_cpu"][0]["wall_ms_per_step"] > 0
    assert "| emu | 2 |" in (tmp_path / "driver.md").read_text()


def test_run_cli_dataset_must_match_the_model(tmp_path, capsys):
    from bitcycle.cli import main

    spec = spec_for_model("mlp", "fashion-mnist", hidden=[16, 16])
    rc = main(["run", "--driver-json", str(spec.save(tmp_path / "d.json")), "--dataset", "digits", "--steps", "8",
               "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "has 64 features per sample but the model takes 784" in err
