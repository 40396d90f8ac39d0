"""Resource model of one generated BitSerialMVAU layer (hw/rtl's ``bitcycle_mvau`` and its buffers):
LUTs fitted to Yosys, the weight ROM's block RAMs from its shape.

LUTs: fitted by ``bitcycle bench compile-lut`` (Yosys 0.23 ``synth_xilinx -flatten``, xc7, LUTs + 4
per LUTRAM) to fixed + per product cell (PE·SIMD), split by kind (a 1-bit layer's cells are build-time
XNORs counted three to a LUT6; a multi-bit layer's choose XNOR or AND per plane) + per lane bit
(PE · (sum + accumulator width)), see :func:`features`. Re-run the bench and update ``LUT_COEF`` when
the RTL changes.
"""

from __future__ import annotations

import math

# fixed, per 1-bit cell, per multi-bit cell, per lane bit: the least-squares fit of `bench compile-lut`
LUT_COEF = {"fixed": 67.71, "per_cell_1bit": 2.609, "per_cell_multibit": 4.992, "per_lane_bit": 0.515}

ROM_BLOCK_BITS = 8192  # bitcycle_mvau keeps ROMs below 8 kbit in LUTs (distributed), larger in block RAM
RAMB18_BITS = 18432
# RAMB18 aspects (depth, width) from 16K×1 to 512×36
RAMB18_ASPECTS = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def sum_width(mw: int, bits_max: int) -> int:
    """bitcycle_mvau's SumW: ±MW for a 1-bit layer, the positional sum of bits_max planes otherwise."""
    return math.ceil(math.log2(mw + 1)) + (1 if bits_max == 1 else bits_max + 2)


def features(pe: int, simd: int, acc_bits: int, bits_max: int, mw: int) -> list[float]:
    """The LUT model's terms, in LUT_COEF's order: fixed, 1-bit cells, multi-bit cells, lane bits."""
    cells = float(pe * simd)
    one = bits_max == 1
    return [1.0, cells if one else 0.0, 0.0 if one else cells, float(pe * (sum_width(mw, bits_max) + acc_bits))]


def wrom_shape(pe: int, simd: int, mw: int, mh: int, lanes: int | None = None) -> tuple[int, int]:
    """(width, depth) of bitcycle_mvau's weight ROM of ``lanes`` PE lanes (all by default): one
    lanes·SIMD-bit word per (neuron, synapse) fold."""
    return (pe if lanes is None else lanes) * simd, (mw // simd) * (mh // pe)


def rom_luts(width: int, depth: int, distributed: bool = False) -> int:
    """LUT6s of a weight ROM built from LUT logic (below 8 kbit, or always when ``distributed``), 0
    in block RAM. Per output bit, Yosys builds 64 words per LUT6, four to a slice (MUXF7/F8), and one
    more LUT level per further 256 words (Yosys 0.23, 64-bit random ROMs 49..784 deep: within 0.6
    LUT per bit)."""
    if width == 0:
        return 0
    if not distributed and width * depth < ROM_BLOCK_BITS:
        return math.ceil(width * depth / 64)
    if not distributed:
        return 0
    return width * (math.ceil(depth / 64) + math.ceil(depth / 256) - 1)


def layer_luts(pe: int, simd: int, acc_bits: int, bits_max: int, mw: int, mh: int, lut_lanes: int = 0) -> int:
    """LUTs of one layer: the fitted engine model plus the weight ROM that is LUT logic (the top
    ``lut_lanes`` PE lanes always, the others below 8 kbit)."""
    f = features(pe, simd, min(32, acc_bits), bits_max, mw)
    engine = sum(c * x for c, x in zip(LUT_COEF.values(), f))
    return (int(math.ceil(engine)) + rom_luts(*wrom_shape(pe, simd, mw, mh, pe - lut_lanes))
            + rom_luts(*wrom_shape(pe, simd, mw, mh, lut_lanes), distributed=True))


def rom_ramb18(width: int, depth: int) -> int:
    """RAMB18s of a weight ROM in the cheapest aspect; 0 below 8 kbit (LUT logic, in the LUT count)."""
    if width * depth < ROM_BLOCK_BITS:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in RAMB18_ASPECTS)


def rom_efficiency(width: int, depth: int) -> float:
    n = rom_ramb18(width, depth)
    return 1.0 if n == 0 else width * depth / (n * RAMB18_BITS)
