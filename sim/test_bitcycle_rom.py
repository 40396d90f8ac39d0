"""cocotb testbench of hw/rtl/bitcycle_rom.sv: random reads with random enables of a random image
(in LUT logic and in block RAM, depths that are and are not powers of two, widths of 1 and past 64),
checked against the image file itself: data_o holds the word of the last enabled address, one cycle
later, and keeps it while en_i is low.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from bitcycle.hwif.rtl import rtl_sources


def read_image(path: Path) -> list[int]:
    return [int(line, 16) for line in path.read_text().split()]


@cocotb.test()
async def reads(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.log.info("RANDOM_SEED=%d", cocotb.RANDOM_SEED)
    words = read_image(Path(os.environ["ROM_IMAGE"]))
    depth = int(dut.DEPTH.value)
    assert len(words) == depth
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    held = None
    for i in range(4 * depth + 20):
        await FallingEdge(dut.clk_i)
        en = i > 0 and rng.random() < 0.7  # (nothing is read before the first enable)
        addr = i % depth if i < depth else rng.randrange(depth)  # every word once, then at random
        dut.en_i.value, dut.addr_i.value = int(en), addr
        await RisingEdge(dut.clk_i)
        await ReadOnly()
        if en:
            held = words[addr]
        if held is not None:
            assert int(dut.data_o.value) == held, f"read {i}: data_o {int(dut.data_o.value):#x}, image {held:#x}"


@pytest.mark.rtl
@pytest.mark.parametrize("width,depth,lut", [(1, 1, 1), (36, 300, 1), (72, 256, 0), (16, 49, 0), (80, 7, 1)])
def test_bitcycle_rom(width, depth, lut):
    import rtl_runner

    # the image is fixed per case (the build names its path; parallel runs write the same bytes),
    # the read sequence is random per run (RANDOM_SEED)
    rng = random.Random(f"bitcycle_rom {width} {depth}")
    image = rtl_runner.BUILD / "rom_images" / f"w{width}d{depth}l{lut}.mem"
    image.parent.mkdir(parents=True, exist_ok=True)
    digits = (width + 3) // 4
    tmp = image.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text("".join(f"{rng.getrandbits(width):0{digits}x}\n" for _ in range(depth)))
    tmp.replace(image)
    rtl_runner.run("bitcycle_rom", rtl_sources("bitcycle_rom"), "test_bitcycle_rom",
                   parameters={"WIDTH": width, "DEPTH": depth, "LUT_LOGIC": lut, "FILE": f'"{image}"'},
                   tag=f"w{width}d{depth}l{lut}", extra_env={"ROM_IMAGE": str(image)})
