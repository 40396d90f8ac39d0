"""bitcycle.bench.synth's comparison with FINN and BISMO: LUT per lane and binary GOPS per kLUT
follow from the lanes, LUTs and clock of each row (2 ops per binary MAC, one MAC per lane and cycle),
and the anchors come from their published totals and cost model."""

from __future__ import annotations

from bitcycle.bench.synth import ANCHORS, same_metrics


def test_same_metrics_from_lanes_luts_and_clock():
    rows = same_metrics([dict(pe=16, simd=32, lut=4096, est_fmax_mhz=125.0)])
    engine, finn, bismo = rows
    assert (engine["lanes"], engine["lut_per_lane"]) == (512, 8.0)
    assert engine["binary_gops_per_klut"] == 2 * 512 * 125.0 / 1000.0 / 4.096  # 31.25
    assert engine["binary_gops_per_klut"] == 31.25
    assert (finn["lanes"], finn["lut"], finn["clock_mhz"]) == (6272, 28360, 100.0)
    assert round(finn["lut_per_lane"], 2) == 4.52
    # BISMO's cost model at Dm = Dn = 8, Dk = 256: 64 * (1.17 * 256 + 164) = 29,664.6 LUT
    assert (bismo["lanes"], bismo["lut"]) == (16384, 29665)
    assert round(bismo["lut_per_lane"], 2) == 1.81


def test_anchors_are_not_changed_by_a_comparison():
    before = [dict(a) for a in ANCHORS]
    same_metrics([dict(pe=4, simd=16, lut=1000, est_fmax_mhz=100.0)])
    assert ANCHORS == before
