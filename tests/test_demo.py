"""`bitcycle demo` end to end: torch, FINN's execution, the golden model and the RTL agree."""

import json

import pytest

from bitcycle.demo import main


@pytest.mark.slow
@pytest.mark.xdist_group("verilator")
def test_demo_is_bit_exact_and_accurate(tmp_path):
    assert main(["--images", "32", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["mismatches"] == 0
    assert result["images"] == 32
    assert {layer["bits"] for layer in result["layers"]} == {8, 1}  # the 8-bit first layer and binary layers
    for layer in result["layers"]:
        assert set(layer["mismatches"]) == {"torch", "finn", "golden", "rtl"}
        assert all(v == 0 for v in layer["mismatches"].values())
    assert result["test_accuracy"] > 0.85


def test_too_few_images_is_rejected(tmp_path):
    from bitcycle.errors import BitCycleError

    with pytest.raises(BitCycleError, match="--images must be ≥ 32"):
        main(["--images", "8", "--out", str(tmp_path), "--no-rtl"])
