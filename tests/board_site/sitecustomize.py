"""Imported at start-up by a notebook kernel of the board-path test (tests/test_notebooks.py puts
this folder and tests/ on PYTHONPATH and sets BITCYCLE_BOARD_STANDIN=1): the kernel then sees a PYNQ
device whose overlay is ``board_standin``'s board, built with the engine of the driver.json beside
the .bit. BITCYCLE_BOARD_STANDIN_MISMATCH=FIELD builds it with HWCFG1.FIELD off by one instead, as
an overlay from another build would be."""

import os

if os.environ.get("BITCYCLE_BOARD_STANDIN") == "1":
    import sys
    from pathlib import Path

    import board_standin

    from bitcycle.driver import load_driver_json
    from bitcycle.hwif import regmap

    def _board_for_bitfile(path: str) -> board_standin.Board:
        board = board_standin.Board(load_driver_json(Path(path).parent).engine)
        field = os.environ.get("BITCYCLE_BOARD_STANDIN_MISMATCH")
        if field:
            board.engine.regs["HWCFG1"] ^= 1 << regmap.FIELDS["HWCFG1"][field][0]
        return board

    _mmio, _stub = board_standin.pynq_stand_in(_board_for_bitfile)
    board_standin.pynq.overlay.MMIO = _mmio
    sys.modules["pynq"] = _stub
