"""The ``pynq`` transport against a stand-in ``pynq`` module (no board here).

The stand-in provides what the transport touches — ``Device.devices``, ``Overlay`` with an IP's
``read``/``write`` and an AXI DMA's send/receive channels (``transfer``, ``idle``, ``error``,
``stop``, ``start``), and ``allocate`` — backed by the emu engine model at the register
*addresses* of the generated map. So the MMIO address mapping, the DMA buffer handling and the
deadline on a hung channel run for real; only the silicon is replaced.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from bitcycle.driver import Accelerator, spec_for_model
from bitcycle.hwif import regmap
from bitcycle.driver.transport import EmuEngine
from bitcycle.errors import BitCycleError

NAME_AT = {addr: name for name, addr in regmap.ADDRESSES.items()}


class Buffer(np.ndarray):
    physical_address = 0x1000_0000

    def flush(self):
        pass

    def invalidate(self):
        pass

    def freebuffer(self):
        pass


class Board:
    """The PL as the transport sees it: an engine behind MMIO and a DMA."""

    def __init__(self, engine):
        self.engine = EmuEngine(engine)
        self.hang_next_receive = False
        self.out_words = np.zeros(0, np.uint64)


class IP:
    def __init__(self, board):
        self.board = board

    def read(self, offset):
        return self.board.engine.read(NAME_AT[offset])

    def write(self, offset, value):
        self.board.engine.write(NAME_AT[offset], value)


class Channel:
    def __init__(self, board, direction):
        self.board, self.direction = board, direction
        self.idle, self.error, self.running = True, False, True
        self.restarts = 0

    def transfer(self, array, start=0, nbytes=0):
        assert self.idle, "transfer on a busy channel"
        n = (nbytes or array.nbytes) // array.itemsize
        if self.direction == "recv":
            self.target, self.n, self.idle = array, n, False
            return
        out = self.board.engine.stream(np.asarray(array[:n], dtype=np.uint64))
        recv = self.board.dma.recvchannel
        if recv.idle:  # nothing to receive (weight load)
            return
        if self.board.hang_next_receive:  # the S2MM side never sees TLAST
            self.board.hang_next_receive = False
            return
        if out.size >= recv.n:
            recv.target[:recv.n] = out[:recv.n].astype(recv.target.dtype)
            recv.idle = True

    def stop(self):
        self.running, self.idle = False, True

    def start(self):
        self.running = True
        self.restarts += 1


@pytest.fixture
def fake_pynq(monkeypatch, tmp_path):
    spec = spec_for_model("mlp", hidden=[20, 12])
    board = Board(spec.engine)
    board.dma = types.SimpleNamespace(sendchannel=Channel(board, "send"), recvchannel=Channel(board, "recv"))

    class Overlay:
        def __init__(self, path):
            assert path.endswith("bitcycle.bit")
            self.bitcycle_top_0 = IP(board)
            self.axi_dma_0 = board.dma
            self.ip_dict = {"bitcycle_top_0": {}, "axi_dma_0": {}}

    def allocate(shape, dtype):
        return np.zeros(shape, dtype=dtype).view(Buffer)

    mod = types.SimpleNamespace(Device=types.SimpleNamespace(devices=["fake-zynq"]), Overlay=Overlay, allocate=allocate)
    monkeypatch.setitem(sys.modules, "pynq", mod)
    (tmp_path / "bitcycle.bit").write_bytes(b"bit")
    (tmp_path / "bitcycle.hwh").write_text("<hwh/>")
    spec.save(tmp_path / "driver.json")
    return board, tmp_path


def test_pynq_transport_trains_like_emu(fake_pynq):
    board, folder = fake_pynq
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


def test_pynq_overlay_lookup_errors(fake_pynq, tmp_path):
    board, folder = fake_pynq
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


def test_pynq_hung_dma_times_out_and_recovers(fake_pynq):
    board, folder = fake_pynq
    with Accelerator("pynq", driver_json=folder / "driver.json", timeout=0.2) as acc:
        x = np.ones((64, 3), np.int64)
        board.hang_next_receive = True
        with pytest.raises(BitCycleError, match="did not complete within 0.2 s"):
            acc.forward_layer(0, x, 2)
        assert board.dma.recvchannel.restarts == 1  # the hung channel was stopped and restarted
        np.testing.assert_array_equal(acc.forward_layer(0, x, 2), acc.sign_w[0].astype(np.int64) @ x)
