"""Register addresses for the ``sim`` and ``pynq`` transports, from the generated register map.

``bitcycle/driver/regmap.py`` is generated from ``hw/regs/bitcycle.rdl`` (``make regs``, owned by
the engine); this module only maps the driver's register names (protocol.REGISTER_NAMES) onto
its addresses, so the driver code never hard-codes an offset.
"""

from __future__ import annotations

from bitcycle.errors import BitCycleError


def _regmap():
    try:
        from bitcycle.driver import regmap
    except ImportError:
        raise BitCycleError("bitcycle/driver/regmap.py is missing: run `make regs` (generated from hw/regs)") from None
    return regmap


def addresses() -> dict[str, int]:
    """Driver register name → byte offset in the engine's AXI4-Lite block."""
    rm = _regmap()
    table = getattr(rm, "ADDRESSES", None) or getattr(rm, "REGISTERS", None)
    if table is None:
        table = {k[:-5]: v for k, v in vars(rm).items() if k.endswith("_ADDR") and isinstance(v, int)}
    table = {str(k).upper(): (v if isinstance(v, int) else v["address"] if isinstance(v, dict) else v.address)
             for k, v in table.items()}
    return table
