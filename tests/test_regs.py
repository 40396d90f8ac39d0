"""The register map is generated from hw/regs/bitcycle.rdl: the committed outputs must be exactly
what the generator writes now, and the Python constants must be usable without numpy."""

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_regenerating_gives_identical_files(tmp_path):
    subprocess.run([sys.executable, str(REPO / "tools" / "gen_regs.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    pairs = {
        "bitcycle_regs.sv": REPO / "hw" / "rtl" / "bitcycle_regs.sv",
        "bitcycle_regs_pkg.sv": REPO / "hw" / "rtl" / "bitcycle_regs_pkg.sv",
        "regmap.py": REPO / "sw" / "bitcycle" / "hwif" / "regmap.py",
        "codes.py": REPO / "sw" / "bitcycle" / "hwif" / "codes.py",
        "bitcycle_codes.svh": REPO / "hw" / "rtl" / "bitcycle_codes.svh",
    }
    for name, committed in pairs.items():
        assert (tmp_path / name).read_text() == committed.read_text(), f"{committed} is stale: run `make regs`"


def test_regmap_plain_python():
    spec = importlib.util.spec_from_file_location("regmap_alone", REPO / "sw" / "bitcycle" / "hwif" / "regmap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert "numpy" not in mod.__dict__
    assert mod.ADDRESSES["ID"] == 0 and mod.ID_VALUE == 0x42435943
    offsets = sorted(mod.ADDRESSES.values())
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
    assert mod.pack("OUT_CFG", OUT_SEL=2, CLIP_SHIFT=3) == 2 | (3 << 8)
    assert mod.field("OUT_CFG", "CLIP_SHIFT", 0x0302) == 3
    for reg, fields in mod.FIELDS.items():  # no overlapping fields inside a register
        used = 0
        for lsb, width, _, _ in fields.values():
            mask = ((1 << width) - 1) << lsb
            assert used & mask == 0, reg
            used |= mask


def test_codes_match_the_register_map():
    """hwif/codes.py names exactly the .rdl's enum codes and ERROR bits, and imports nothing of bitcycle."""
    from bitcycle.hwif import codes, regmap

    assert {m.name: m.value for m in codes.Mode} == regmap.ENUMS["MODE.MODE"]
    assert {m.name: m.value for m in codes.OutSel} == regmap.ENUMS["OUT_CFG.OUT_SEL"]
    assert [getattr(codes, f"ERR_{n}") for n in regmap.ERROR_BITS] == [1 << i for i in range(len(regmap.ERROR_BITS))]
    assert list(codes.ERROR_DESC) == [1 << i for i in range(len(regmap.ERROR_BITS))]
    assert codes.MODE_LAST == max(regmap.ENUMS["MODE.MODE"].values()) == 4
    assert codes.COMPUTE_MODES == (0, 1, 2)
    assert "bitcycle" not in (REPO / "sw" / "bitcycle" / "hwif" / "codes.py").read_text().split('"""', 2)[2]
