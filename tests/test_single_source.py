"""Every engine code and every engine formula has one definition, checked on the source (AST):

* codes — the job modes, output selects and CTRL/STATUS/ERROR bits come from hw/regs/bitcycle.rdl
  through tools/gen_regs.py (hwif/codes.py, hwif/regmap.py). No other module in sw/, sim/, tools/
  or tests/ binds a code name to a literal, declares an enum member with a literal code, or spells
  the list of the .rdl's mode / error names by hand;
* the cycle model — bits × tiles × vectors lives in golden/cycles.py: no module in sw/, sim/ or
  tools/ outside golden/ (which also owns the stream format's word counts, of the same shape)
  multiplies a ``bits`` by a PE/SIMD tile count (or by FINN's get_exp_cycles);
* the accumulator rule — "magnitude's bit length + 1 sign bit" lives in golden/accwidth.py.

Tests may restate a formula as an independent oracle (that is what an exact test is), so the
formula scan skips tests/. The last test plants each kind of duplicate in a file and shows that the
scan names it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from bitcycle.hwif import codes, regmap

REPO = Path(__file__).resolve().parents[1]
GENERATED = {REPO / "sw/bitcycle/hwif/codes.py", REPO / "sw/bitcycle/hwif/regmap.py", REPO / "tools/gen_regs.py"}
# golden owns the cycle model (cycles.py) and the stream format, whose word counts have the same shape
CYCLE_HOME = REPO / "sw/bitcycle/golden"
ACC_HOME = REPO / "sw/bitcycle/golden/accwidth.py"

CODE_NAMES = {n for n in vars(codes) if n.isupper() and not n.startswith("_")}
CODE_PREFIXES = ("MODE_", "OUT_", "ERR_", "CTRL_", "STATUS_")
# enum members / names of the .rdl's encodings and ERROR bits (FORWARD, RAW, BAD_MODE, ...)
MEMBER_NAMES = {m.name for e in (codes.Mode, codes.OutSel) for m in e} | set(regmap.ERROR_BITS)
NAME_LISTS = [{m.name for m in codes.Mode}, set(regmap.ERROR_BITS)]


def _is_const_int(node: ast.AST) -> bool:
    """A literal integer expression: 3, 1 << 4, -1, (0, 1, 2)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return _is_const_int(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_const_int(node.left) and _is_const_int(node.right)
    if isinstance(node, (ast.Tuple, ast.List)):
        return bool(node.elts) and all(_is_const_int(e) for e in node.elts)
    return False


def _targets(node: ast.AST) -> list[tuple[str, ast.AST]]:
    """(name, value) pairs a statement binds: a = v, a: T = v, a, b = 1, 2."""
    if isinstance(node, ast.Assign):
        pairs = []
        for t in node.targets:
            if isinstance(t, ast.Name):
                pairs.append((t.id, node.value))
            elif isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple) and len(t.elts) == len(node.value.elts):
                pairs += [(e.id, v) for e, v in zip(t.elts, node.value.elts) if isinstance(e, ast.Name)]
        return pairs
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return [(node.target.id, node.value)]
    return []


def _is_code_name(name: str) -> bool:
    """A generated code's name, or a prefixed spelling of one of the .rdl's members (ERR_SHORT)."""
    if name in CODE_NAMES:
        return True
    prefix = next((p for p in CODE_PREFIXES if name.startswith(p)), None)
    return prefix is not None and any(m == name[len(prefix):] or m.endswith("_" + name[len(prefix):])
                                      for m in MEMBER_NAMES)


def _names_typed_by_hand(value: ast.AST) -> bool:
    if not isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return False
    words = {e.value.upper() for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return any(len(words & names) >= 3 for names in NAME_LISTS)


def code_duplicates(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        for name, value in _targets(node):
            if _is_code_name(name) and _is_const_int(value):
                found.append(f"{path}:{node.lineno}: {name} = <literal> (import it from bitcycle.hwif.codes)")
            if _names_typed_by_hand(value):
                found.append(f"{path}:{node.lineno}: {name} = the .rdl's names typed by hand "
                             "(use regmap.ERROR_BITS / codes.Mode)")
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                for name, value in _targets(stmt):
                    if name in MEMBER_NAMES and _is_const_int(value):
                        found.append(f"{path}:{stmt.lineno}: {node.name}.{name} = <literal> "
                                     "(use bitcycle.hwif.codes.Mode / OutSel)")
    return found


def _factors(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _factors(node.left) + _factors(node.right)
    return [node]


def _is_bits(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):  # int(bits), get_nodeattr("bits")
        return any(_is_bits(a) for a in node.args) or (
            any(isinstance(a, ast.Constant) and a.value == "bits" for a in node.args))
    return (isinstance(node, ast.Name) and node.id == "bits") or (isinstance(node, ast.Attribute) and node.attr == "bits")


def _mentions_tiling(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
        if name is not None and name.lower() in ("pe", "simd", "get_exp_cycles"):
            return True
        if isinstance(sub, ast.Constant) and sub.value in ("PE", "SIMD"):
            return True
    return False


def _is_bit_length(node: ast.AST) -> bool:
    """x.bit_length() or ceil(log2(...))."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    if name == "bit_length":
        return True
    return name == "ceil" and any(isinstance(a, ast.Call) and "log2" in ast.dump(a.func) for a in node.args)


def formula_duplicates(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    inner = {id(side) for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)
             for side in (n.left, n.right)}  # report a product once, at its outermost ×
    for node in ast.walk(tree):
        if not isinstance(node, ast.BinOp):
            continue
        if not path.is_relative_to(CYCLE_HOME) and isinstance(node.op, ast.Mult) and id(node) not in inner:
            factors = _factors(node)
            if any(_is_bits(f) for f in factors) and any(_mentions_tiling(f) for f in factors if not _is_bits(f)):
                found.append(f"{path}:{node.lineno}: a bits × tiles cycle formula (call bitcycle.golden.cycles)")
        if path != ACC_HOME and isinstance(node.op, ast.Add):
            pair = (node.left, node.right)
            if any(_is_bit_length(a) for a in pair) and any(isinstance(a, ast.Constant) and a.value == 1 for a in pair):
                found.append(f"{path}:{node.lineno}: a bit_length + 1 accumulator width (call bitcycle.golden.accwidth)")
    return found


def _sources(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((REPO / d).rglob("*.py"))
            if p not in GENERATED and "build" not in p.relative_to(REPO).parts[:1]]


def test_no_code_is_defined_twice():
    bad = [line for p in _sources("sw", "sim", "tools", "tests") for line in code_duplicates(p)]
    assert not bad, "\n".join(bad)


def test_no_formula_is_defined_twice():
    bad = [line for p in _sources("sw", "sim", "tools") for line in formula_duplicates(p)]
    assert not bad, "\n".join(bad)


def test_the_scans_catch_planted_duplicates(tmp_path):
    """Each kind of duplicate this suite once had (in golden/stream.py, driver/protocol.py,
    sim/bitcycle_tb.py, hwbench.py, compile/customop.py), planted in a file: each is named."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import enum\n"
        "MODE_FORWARD = 0\n"                                                      # 2
        "ERR_OVERFLOW, ERR_SHORT = 1 << 4, 1 << 6\n"                              # 3
        "ERR_BITS = ['bad_mode', 'bad_bits', 'bad_shape', 'overflow']\n"          # 4
        "class Mode(enum.IntEnum):\n"
        "    FORWARD = 0\n"                                                       # 6
        "def ideal_cycles(mode, bits, m, k, n, pe, simd):\n"
        "    return bits * _ceil(m, pe) * _ceil(k, simd) * n\n"                   # 8
        "def get_exp_cycles(self):\n"
        "    return int(self.get_nodeattr('bits') * super().get_exp_cycles())\n"  # 10
        "def per_vector(bits, mh, mw, pe, simd):\n"
        "    return bits * (mh // pe) * (mw // simd)\n"                           # 12
        "def acc_bits_for(bound):\n"
        "    return max(2, int(bound).bit_length() + 1)\n"                        # 14
        "STATUS_DONE = 1 << 1\n"                                                  # 15
        "ok = dict(mode=5, bits=3)\n"                                             # not a definition
        "OUT_DEPTH, ERR_IRQ = 2, 1 << 14\n"                                        # not the engine's codes
        "for name in ('FORWARD', 'BACKWARD_DATA', 'LOAD_WEIGHTS'): pass\n"         # a use, not a list
    )
    codes_found = code_duplicates(planted)
    assert sorted(int(line.split(":")[1]) for line in codes_found) == [2, 3, 3, 4, 6, 15], codes_found
    formulas = formula_duplicates(planted)
    assert sorted(int(line.split(":")[1]) for line in formulas) == [8, 10, 12, 14], formulas
    clean = tmp_path / "clean.py"
    clean.write_text("from bitcycle.hwif.codes import MODE_FORWARD\nx = MODE_FORWARD\ny = 3 * k * n\n"
                     "z = bits * m * k * n\nthr = max(2, w.bit_length())\n")
    assert code_duplicates(clean) == [] and formula_duplicates(clean) == []
