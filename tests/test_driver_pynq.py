"""The ``pynq`` transport over pynq 4.0's REAL AXI DMA classes, with no board.

``pynq.lib.dma.DMA`` and its ``_SDMAChannel`` run unmodified; their MMIO is a register model of an
AXI DMA in direct-register mode that follows PG021 (``tests/pg021.py``: errors halt a channel until
a soft reset, RS=0 with a transfer pending does not halt it), moving words between the fake
``pynq.allocate`` buffers (by physical address) and the emu engine model. Only ``pynq.Overlay``,
``pynq.allocate`` and ``pynq.Device`` are stand-ins (they need a device). So a job really flows:
driver → registers at the generated addresses → pynq's transfer() → DMA model → engine → back.

Every fault (a hung channel, each DMASR error bit, a short/long packet, a too-small
buffer_max_size, an engine ERROR mid-transfer, a stuck soft reset) must end in one clear
BitCycleError, leave the engine and DMA idle, and the next jobs must be bit-exact with ``emu``.
pytest-timeout is not installed here: ``hang_guard`` arms SIGALRM per test, so a wait that spins
without a deadline (pynq's start()/stop() after a fault, the old recovery) fails instead of hanging.
"""

from __future__ import annotations

import re
import signal
import sys

import numpy as np
import pytest

from board_standin import Board, pynq, pynq_stand_in
from bitcycle.driver import Accelerator, spec_for_model
from bitcycle.driver import protocol as P
from bitcycle.errors import BitCycleError
from bitcycle.hwif import regmap

GUARD_SECONDS = 60  # far above any test here; only an unbounded spin gets near it
TIMEOUT = 0.2  # the driver's deadline in the fault tests: a hang costs 0.2 s


@pytest.fixture(autouse=True)
def hang_guard():
    def expire(signum, frame):
        pytest.fail(f"test still running after {GUARD_SECONDS} s: a wait without a deadline spun", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, GUARD_SECONDS)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def board_for(monkeypatch, tmp_path):
    """``board_for(length_width)`` → (board, folder with driver.json and a .bit/.hwh)."""
    spec = spec_for_model("mlp", hidden=[20, 12])
    spec.save(tmp_path / "driver.json")
    (tmp_path / "bitcycle.bit").write_bytes(b"bit")
    (tmp_path / "bitcycle.hwh").write_text("<hwh/>")

    def make(length_width: int = 26):
        board = Board(spec.engine, length_width)

        def board_for_bitfile(path):
            assert path.endswith("bitcycle.bit")
            return board

        mmio, stub = pynq_stand_in(board_for_bitfile)
        monkeypatch.setattr(pynq.overlay, "MMIO", mmio)
        monkeypatch.setitem(sys.modules, "pynq", stub)
        return board, tmp_path

    return make


def test_pynq_transport_trains_like_emu(board_for):
    board, folder = board_for()
    rng = np.random.default_rng(0)
    x, y = rng.random((48, 64)), rng.integers(0, 10, 48)
    runs = []
    for backend in ("pynq", "emu"):
        with Accelerator(backend, driver_json=folder / "driver.json", seed=4) as acc:
            acc.set_bits(5)
            losses = [acc.train_step(x[s:s + 16], y[s:s + 16])["loss"] for s in (0, 16, 32)]
            runs.append((losses, [w.copy() for w in acc.sign_w], acc.counters()))
    (lp, wp, cp), (le, we, ce) = runs
    assert lp == le
    for a, b in zip(wp, we):
        np.testing.assert_array_equal(a, b)
    assert cp["jobs"] == ce["jobs"] and cp["bytes_received"] == ce["bytes_received"]
    assert board.dma_model.resets == 1  # the pynq transport's clean-start soft reset, none after


def test_pynq_overlay_lookup_errors(board_for):
    board, folder = board_for()
    with pytest.raises(BitCycleError, match=r"overlay 'missing.bit' named by .*driver.json not found"):
        Accelerator("pynq", driver_json=folder / "driver.json", bitfile="missing.bit")
    # an overlay built with other parameters than driver.json says: an error naming both files
    board.engine.regs["HWCFG1"] ^= 1 << regmap.FIELDS["HWCFG1"]["WMEM_DEPTH"][0]
    with pytest.raises(BitCycleError, match=r"overlay .*bitcycle.bit was built with other parameters than "
                                            r".*driver.json says: WMEM_DEPTH=1025"):
        Accelerator("pynq", driver_json=folder / "driver.json")
    (folder / "bitcycle.hwh").unlink()
    with pytest.raises(BitCycleError, match="has no bitcycle.hwh beside it"):
        Accelerator("pynq", driver_json=folder / "driver.json")


def assert_next_jobs_match_emu(acc, folder, x):
    """After a fault: a forward product and a whole training step, bit-exact with emu."""
    rng = np.random.default_rng(1)
    batch, labels = rng.random((16, 64)), rng.integers(0, 10, 16)
    with Accelerator("emu", driver_json=folder / "driver.json", seed=acc.seed, **ONE_BLOCK) as emu:
        np.testing.assert_array_equal(acc.forward_layer(0, x, 2), emu.forward_layer(0, x, 2))
        got, want = acc.train_step(batch, labels), emu.train_step(batch, labels)
        assert got["loss"] == want["loss"]
        for a, b in zip(acc.sign_w, emu.sign_w):
            np.testing.assert_array_equal(a, b)


# one scale per gradient row: layer 0's W [20, 64] is then one weight block, so after a first
# forward_layer it stays resident and the next DMA transfer is the FORWARD job's
ONE_BLOCK = {"grad_block": 0, "stream_weights": False}  # one FORWARD job through the weight memory
X = np.random.default_rng(2).integers(-2, 2, (64, 3))
def _out_bytes() -> int:
    """FORWARD of layer 0 on X (W [20, 64] · x [64, 3] at 2 bits): the packed results' packet, in bytes."""
    from bitcycle.driver.planning import result_widths
    from bitcycle.golden import stream as st

    engine = spec_for_model("mlp", hidden=[20, 12]).engine
    _, res_bits = result_widths(2, 64)
    return engine.stream_bytes * st.output_words(st.MODE_FORWARD, P.geometry(engine), 20, 64, 3, res_bits)


OUT_BYTES = _out_bytes()
FAULTS = {
    "hang_send": r"DMA send \(MM2S\) did not finish \(DMASR=0x1000: running, transfer pending\)",
    "hang_receive": r"DMA receive \(S2MM\) did not finish \(DMASR=0x1000: running, transfer pending\)",
    "mm2s_slverr": r"DMA send \(MM2S\) halted with DMASlvErr",
    "mm2s_decerr": r"DMA send \(MM2S\) halted with DMADecErr",
    "s2mm_slverr": r"DMA receive \(S2MM\) halted with DMASlvErr",
    "s2mm_decerr": r"DMA receive \(S2MM\) halted with DMADecErr",
    "s2mm_interr": r"DMA receive \(S2MM\) halted with DMAIntErr",
    "short_packet": rf"DMA receive wrote {OUT_BYTES - 4} bytes but the job's output packet is {OUT_BYTES} bytes "
                    r"\(short packet\)",
    "long_packet": rf"DMA receive wrote {OUT_BYTES + 8} bytes but the job's output packet is {OUT_BYTES} bytes "
                   r"\(long packet\)",
    "overlong_packet": r"DMA receive \(S2MM\) halted with DMAIntErr",  # beyond the armed buffer
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_pynq_dma_fault_recovers_bit_exact(board_for, fault):
    board, folder = board_for()
    with Accelerator("pynq", driver_json=folder / "driver.json", timeout=TIMEOUT, **ONE_BLOCK) as acc:
        acc.forward_layer(0, X, 2)  # layer 0's weights resident: the fault hits the FORWARD job itself
        resets = board.dma_model.resets
        board.dma_model.inject(fault)
        with pytest.raises(BitCycleError, match=r"FORWARD M=\d+ K=\d+ N=\d+ bits=\d+ stream failed \(deadline 0.2 s\): " + FAULTS[fault]):
            acc.forward_layer(0, X, 2)
        assert board.dma_model.resets == resets + 1  # recovered by one soft reset of both channels
        assert board.idle()
        assert_next_jobs_match_emu(acc, folder, X)


def test_pynq_fault_during_weight_load_recovers(board_for):
    board, folder = board_for()
    with Accelerator("pynq", driver_json=folder / "driver.json", timeout=TIMEOUT, **ONE_BLOCK) as acc:
        board.dma_model.inject("hang_send")  # the first job is layer 0's LOAD_WEIGHTS (no receive)
        with pytest.raises(BitCycleError, match=r"LOAD_WEIGHTS .* stream failed .*DMA send \(MM2S\) did not finish"):
            acc.forward_layer(0, X, 2)
        assert board.idle() and acc.resident is None
        assert_next_jobs_match_emu(acc, folder, X)


def test_pynq_engine_error_ends_the_wait_with_its_code(board_for):
    board, folder = board_for()
    with Accelerator("pynq", driver_json=folder / "driver.json", timeout=TIMEOUT, **ONE_BLOCK) as acc:
        acc.forward_layer(0, X, 2)
        board.dma_model.inject("drop_input_word")  # TLAST one word early: the engine flags STREAM_SHORT
        code = P.ERR_STREAM_SHORT
        with pytest.raises(BitCycleError, match=r"engine stopped FORWARD M=20 K=64 N=3 bits=2: "
                                                + re.escape(P.decode_error(code))) as caught:
            acc.forward_layer(0, X, 2)
        # the transport's wait ended on the engine's ERROR, not on the deadline
        assert str(caught.value.__context__) == (f"engine flagged ERROR={code:#x} ({P.decode_error(code)}) "
                                                 "during the DMA receive (S2MM)")
        assert board.idle()
        assert_next_jobs_match_emu(acc, folder, X)


def test_pynq_buffer_max_size_checked_before_start(board_for):
    board, folder = board_for(length_width=14)  # Vivado's default c_sg_length_width: 16383 bytes
    with Accelerator("pynq", driver_json=folder / "driver.json", timeout=TIMEOUT, **ONE_BLOCK) as acc:
        x = np.random.default_rng(3).integers(-128, 128, (64, 200))  # 8-bit, 200 columns: 25600 bytes in
        acc.forward_layer(0, x[:, :2], 8)
        starts = board.starts
        with pytest.raises(BitCycleError, match=r"^the job's input packet is 25600 bytes but the AXI DMA moves at "
                                                r"most 16383 \(buffer_max_size, c_sg_length_width=14\); a packet "
                                                r"cannot be split, so rebuild the overlay with "
                                                r"CONFIG.c_sg_length_width \{26\} .*zynq_bd.tcl.in"):
            acc.forward_layer(0, x, 8)
        assert board.starts == starts and board.idle()  # refused before CTRL.START: nothing armed
        with Accelerator("emu", driver_json=folder / "driver.json", **ONE_BLOCK) as emu:
            np.testing.assert_array_equal(acc.forward_layer(0, x[:, :60], 8), emu.forward_layer(0, x[:, :60], 8))
        assert_next_jobs_match_emu(acc, folder, X)


def test_pynq_stuck_soft_reset_is_reported_and_retried(board_for):
    board, folder = board_for()
    with Accelerator("pynq", driver_json=folder / "driver.json", timeout=TIMEOUT, **ONE_BLOCK) as acc:
        acc.forward_layer(0, X, 2)
        board.dma_model.inject("hang_receive")
        board.dma_model.reset_stuck = True
        with pytest.raises(BitCycleError, match=r"S2MM\) did not finish .*; then the AXI DMA soft reset did not "
                                                r"finish within 0.2 s .*reload the overlay"):
            acc.forward_layer(0, X, 2)
        with pytest.raises(BitCycleError, match=r"^FORWARD .* stream failed .*soft reset did not finish"):
            acc.forward_layer(0, X, 2)  # still stuck: the next job resets first and says so again
        assert not board.engine.read("STATUS") & P.STATUS_BUSY  # the driver aborted that job too
        board.dma_model.reset_stuck = False
        assert_next_jobs_match_emu(acc, folder, X)
