"""The engine's cycle model: the one definition that the hardware bench, the driver's ``emu``
backend and the FINN custom op (``BitSerialMVAU.get_exp_cycles``) all call.

The PE×SIMD bit-serial array consumes one plane-chunk of a vector per cycle, so a job costs

    FORWARD / BACKWARD_DATA: bits · ⌈M/PE⌉ · ⌈K/SIMD⌉ · N        (W tiles × N vectors × bits planes)
    BACKWARD_WEIGHT:         bits · ⌈K/PE⌉ · ⌈N/SIMD⌉ · M        (sign(x) tiles × M vectors of dy)

array cycles (:func:`array_cycles`); :class:`CycleModel` adds the pipeline latency, the sign(x)
tiles BACKWARD_WEIGHT streams in first, and one cycle per input word for the load modes.
Plain Python (runs on the board image).
"""

from __future__ import annotations

from dataclasses import dataclass

from bitcycle.hwif.codes import (
    MODE_BACKWARD_DATA,
    MODE_BACKWARD_WEIGHT,
    MODE_FORWARD,
    MODE_LOAD_THRESHOLDS,
    MODE_LOAD_WEIGHTS,
)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def signx_tiles(k: int, n: int, pe: int, simd: int) -> int:
    """PE×SIMD tiles of sign(x) [K, N] that a BACKWARD_WEIGHT job streams in before dy."""
    return _ceil(k, pe) * _ceil(n, simd)


def array_cycles(mode: int, bits: int, m: int, k: int, n: int, pe: int, simd: int) -> int:
    """Cycles the array computes for one job of a compute ``mode`` on W [M, K] and a batch of N
    (no latency, no loads): one plane-chunk per cycle."""
    if mode == MODE_BACKWARD_WEIGHT:
        return bits * signx_tiles(k, n, pe, simd) * m
    if mode in (MODE_FORWARD, MODE_BACKWARD_DATA):
        return bits * _ceil(m, pe) * _ceil(k, simd) * n
    raise ValueError(f"mode {mode} is not a compute mode (FORWARD, BACKWARD_DATA, BACKWARD_WEIGHT)")


@dataclass(frozen=True)
class CycleModel:
    """Cycles of one whole job (start to done) on a PE×SIMD array with a fixed pipeline latency:

        compute modes:   array_cycles + latency (BACKWARD_WEIGHT: + its sign(x) tiles)
        LOAD_WEIGHTS / LOAD_THRESHOLDS: one cycle per input word + latency

    The driver's ``emu`` backend (no clock) reports these; ``sim`` and ``pynq`` read the engine's
    CYCLES register.
    """

    pe: int
    simd: int
    latency: int = 8

    def cycles(self, mode: int, bits: int, m: int, k: int, n: int, words_in: int = 0) -> int:
        if mode in (MODE_LOAD_WEIGHTS, MODE_LOAD_THRESHOLDS):
            return words_in + self.latency
        load = signx_tiles(k, n, self.pe, self.simd) if mode == MODE_BACKWARD_WEIGHT else 0
        return load + array_cycles(mode, bits, m, k, n, self.pe, self.simd) + self.latency
