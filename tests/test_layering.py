"""The house rules, checked on the source: data flows one way (nets → train → compile → driver,
golden and hwif used by all), the board-side packages import no training stack, and nothing below the top
floor imports a benchmark. Every import counts, lazy ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sw" / "bitcycle"
BASE = {"errors", "cliutil", "golden", "hwif", "data", "schedule"}
# stage -> the bitcycle sub-packages/modules it may import
ALLOWED = {
    # the bottom floor: golden reads the engine's codes from hwif's generated, import-free codes.py
    "golden": {"errors", "golden", "hwif.codes"},
    "hwif": {"errors", "golden", "hwif"},
    "data": {"errors", "data"},
    "quant": BASE | {"quant"},
    "nets": BASE | {"quant", "nets"},
    "train": BASE | {"quant", "nets", "train"},
    "compile": BASE | {"quant", "nets", "train", "compile"},
    # runs on the board: numpy only, no torch/FINN stages (nothing of quant or nets)
    "driver": BASE | {"driver"},
}


def _imports(path: Path) -> set[str]:
    """Every bitcycle module ``path`` imports, without the ``bitcycle.`` prefix."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "bitcycle" and len(parts) > 1:
                found.add(".".join(parts[1:]))
    return found


def _outside(imported: set[str], allowed: set[str]) -> set[str]:
    return {m for m in imported if not any(m == a or m.startswith(a + ".") for a in allowed)}


def test_each_stage_imports_only_what_lies_below_it():
    bad = []
    for stage, allowed in ALLOWED.items():
        for path in sorted((PKG / stage).rglob("*.py")):
            extra = _outside(_imports(path), allowed)
            if extra:
                bad.append(f"{path.relative_to(PKG)} imports bitcycle.{', bitcycle.'.join(sorted(extra))}")
    assert not bad, "\n".join(bad)


def test_nothing_below_the_top_floor_imports_a_benchmark():
    floor = {"cli.py", "demo.py", "demo_check.py"}
    bad = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
           if _outside(_imports(p), {"bench"}) != _imports(p) and p.parent.name != "bench" and p.name not in floor]
    assert not bad, bad


def test_the_check_sees_a_violation(tmp_path):
    """The scanner finds a lazy import inside a function (so the rules above have teeth)."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from bitcycle.train.trainer import train\n    import bitcycle.nets as n\n")
    assert _outside(_imports(f), ALLOWED["driver"]) == {"train.trainer", "train.trainer.train", "nets"}
