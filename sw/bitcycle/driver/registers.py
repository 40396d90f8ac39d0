"""Register addresses for the ``sim`` and ``pynq`` transports, from the generated register map.

``bitcycle/hwif/regmap.py`` is generated from ``hw/regs/bitcycle.rdl`` (``make regs``, owned by
the engine); the driver's register names (protocol.REGISTER_NAMES) are the map's names, so no
offset is written by hand anywhere in the driver.
"""

from __future__ import annotations

from bitcycle.driver import protocol as P
from bitcycle.hwif import regmap
from bitcycle.errors import BitCycleError


def addresses() -> dict[str, int]:
    """Driver register name → byte offset in the engine's AXI4-Lite block."""
    missing = [name for name in P.REGISTER_NAMES if name not in regmap.ADDRESSES]
    if missing:
        raise BitCycleError(f"the generated regmap.py lacks registers {missing}: regenerate it with `make regs`")
    return {name: regmap.ADDRESSES[name] for name in P.REGISTER_NAMES}


def check_bits() -> None:
    """The CTRL/STATUS bit positions the driver uses are the map's."""
    f = regmap.FIELDS
    assert f["CTRL"]["START"][0] == P.CTRL_START.bit_length() - 1
    assert f["CTRL"]["ABORT"][0] == P.CTRL_ABORT.bit_length() - 1
    assert f["STATUS"]["BUSY"][0] == P.STATUS_BUSY.bit_length() - 1
    assert f["STATUS"]["DONE"][0] == P.STATUS_DONE.bit_length() - 1
    assert f["STATUS"]["CHECKING"][0] == P.STATUS_CHECKING.bit_length() - 1
