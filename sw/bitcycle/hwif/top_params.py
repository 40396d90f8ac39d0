"""The training overlay's build parameters: every ``bitcycle_top`` parameter, from one dict.

``bitcycle compile`` writes :func:`rtl_parameters` into driver.json (``engine.rtl_parameters``), the
generated ``bd/bd.tcl`` sets each of them on the ``bitcycle_top`` cell, and the sim backend builds the
Verilated top with the same dict, so the three cannot drift apart.

The parameter *names* come from parsing ``hw/rtl/bitcycle_top.sv`` (:func:`module_parameters`): when the
engine RTL gains or loses a top parameter the dict follows. Parameters the driver relies on take their
value from :class:`~bitcycle.hwif.driver_json.EngineSpec` (:data:`ENGINE_FIELDS`); any other keeps its
RTL default, read from the same declaration. Parsing needs the source tree; the board side only
checks a loaded dict against the spec (:func:`check_against_spec`), with no file access.
"""

from __future__ import annotations

import re
from pathlib import Path

from bitcycle.errors import BitCycleError

# top parameter → how its value follows from driver.json's engine section (the HWCFG fields the
# driver compares on the board are these same numbers)
ENGINE_FIELDS = {
    "PE": lambda e: e.pe,
    "SIMD": lambda e: e.simd,
    "ACC_BITS": lambda e: e.acc_bits,
    "DATA_W": lambda e: 8 * e.stream_bytes,
    "THR_MAX": lambda e: e.thr_max,
    "WMEM_DEPTH": lambda e: e.weight_words,
    "AMEM_DEPTH": lambda e: e.act_tiles,
    "MAX_CHUNKS": lambda e: e.max_chunks,
}

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_PARAM = re.compile(r"\bparameter\s+(?:(?:int|integer|logic|bit|signed|unsigned)\s+)*(?:\[[^\]]*\]\s*)?"
                    r"(\w+)\s*=\s*([^,;)]+)")


def rtl_top_path() -> Path:
    return Path(__file__).resolve().parents[3] / "hw" / "rtl" / "bitcycle_top.sv"


def _header(text: str, module: str, path: Path) -> str:
    """``module NAME #( … )`` parameter port list (balanced parentheses), or '' without one."""
    m = re.search(rf"\bmodule\s+{re.escape(module)}\b", text)
    if m is None:
        raise BitCycleError(f"{path}: no module {module!r}; pass the file that declares it")
    hash_at = re.compile(r"\s*#\s*\(").match(text, m.end())
    if hash_at is None:
        return ""
    depth, i = 1, hash_at.end()
    while depth and i < len(text):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    return text[hash_at.end(): i - 1]


def module_parameters(path: str | Path | None = None, module: str = "bitcycle_top") -> dict[str, int]:
    """Parameter names of ``module`` in declaration order, with their integer defaults."""
    path = Path(path) if path is not None else rtl_top_path()
    if not path.is_file():
        raise BitCycleError(f"{path} not found: the overlay's parameters are read from the BitCycle source tree (hw/rtl)")
    text = _COMMENTS.sub("", path.read_text())
    out: dict[str, int] = {}
    for name, default in _PARAM.findall(_header(text, module, path)):
        default = default.strip()
        try:
            out[name] = int(default.replace("_", ""), 0)
        except ValueError:
            raise BitCycleError(f"{path}: parameter {name} defaults to {default!r}, not an integer literal; "
                                "give it a literal default so driver.json and bd.tcl can name its value") from None
    if not out:
        raise BitCycleError(f"{path}: module {module} declares no parameters in its #( … ) list")
    return out


def rtl_parameters(engine, path: str | Path | None = None) -> dict[str, int]:
    """Every parameter of ``bitcycle_top``: the engine section's value where it has one, else the RTL default."""
    declared = module_parameters(path)
    return {name: int(ENGINE_FIELDS[name](engine)) if name in ENGINE_FIELDS else default
            for name, default in declared.items()}


def check_against_spec(params: dict, engine, where: str = "driver.json") -> None:
    """A loaded ``engine.rtl_parameters`` must hold integers that agree with the rest of the engine section."""
    if not isinstance(params, dict) or not params:
        raise BitCycleError(f"{where}: engine.rtl_parameters must be a non-empty object of parameter → integer")
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise BitCycleError(f"{where}: engine.rtl_parameters.{name} must be an integer, got {value!r}")
    wrong = [f"{name}={params[name]} but the engine section gives {get(engine)}"
             for name, get in ENGINE_FIELDS.items() if name in params and params[name] != get(engine)]
    if wrong:
        raise BitCycleError(f"{where}: engine.rtl_parameters disagree with the engine section ({'; '.join(wrong)}); "
                            "re-run `bitcycle compile` instead of editing one of them")
