"""Precision schedules for the gradient bit-width b(t) — pure Python (the board driver imports it).

Cosine (CPT, Fu et al. ICLR 2021; CycleBNN, Fontana et al. 2024), with period T = total_steps / cycles:

    b(t) = round(b_min + ½·(b_max − b_min)·(1 − cos(π·(t mod T)/T)))

Each cycle starts at b_min and rises to (almost) b_max; then the next cycle starts low again.
``triangle`` rises linearly from b_min to b_max in the first half of a period and falls back in the
second half. ``fixed`` is b_max at every step. ``round`` is round-half-up (floor(x + ½)), not
Python's banker's rounding, so every implementation (driver, RTL test, board) gets the same integer.

The grad-bits SPEC of the command line:

    fp32            no gradient quantisation (b = 32 at every step)
    fixed:B         B bits at every step (1 ≤ B ≤ 32)
    cosine:L-HxC    cosine from L to H bits, C cycles over the run
    triangle:L-HxC  triangle from L to H bits, C cycles over the run
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bitcycle.errors import BitCycleError

KINDS = ("cosine", "triangle", "fixed")
MIN_BITS, MAX_BITS = 1, 32
FP32_BITS = 32  # b = 32 means: no gradient quantisation


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _check_bits(name: str, b: int) -> None:
    if isinstance(b, bool) or not isinstance(b, int) or not MIN_BITS <= b <= MAX_BITS:
        raise BitCycleError(f"{name}={b!r} is outside {MIN_BITS}..{MAX_BITS}; give an integer bit-width in that range")


class CyclicSchedule:
    """b(step) for ``kind`` in cosine | triangle | fixed (see the module docstring for the formulas)."""

    def __init__(self, b_min: int, b_max: int, cycles: int, total_steps: int, kind: str = "cosine"):
        _check_bits("b_min", b_min)
        _check_bits("b_max", b_max)
        if b_min > b_max:
            raise BitCycleError(f"b_min={b_min} > b_max={b_max}; the low bit-width must come first (e.g. cosine:2-8x8)")
        if kind not in KINDS:
            raise BitCycleError(f"unknown schedule kind {kind!r}; choose one of {', '.join(KINDS)}")
        if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
            raise BitCycleError(f"cycles={cycles!r} must be an integer >= 1")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise BitCycleError(f"total_steps={total_steps!r} must be an integer >= 1")
        if kind != "fixed" and cycles > total_steps:
            raise BitCycleError(f"{cycles} cycles do not fit in {total_steps} steps; use at most {total_steps} cycles "
                                f"(or train longer)")
        self.b_min, self.b_max, self.cycles, self.total_steps, self.kind = b_min, b_max, cycles, total_steps, kind
        self.period = total_steps / cycles  # float: the cycles tile the run exactly

    def phase(self, step: int) -> float:
        """Position in the current cycle, in [0, 1)."""
        if step < 0:
            raise BitCycleError(f"step={step} is negative; steps count from 0")
        return math.fmod(step, self.period) / self.period

    def bits(self, step: int) -> int:
        if self.kind == "fixed":
            if step < 0:
                raise BitCycleError(f"step={step} is negative; steps count from 0")
            return self.b_max
        p = self.phase(step)
        span = self.b_max - self.b_min
        if self.kind == "cosine":
            return _round_half_up(self.b_min + 0.5 * span * (1.0 - math.cos(math.pi * p)))
        return _round_half_up(self.b_min + span * (1.0 - abs(2.0 * p - 1.0)))  # triangle

    def bits_list(self, steps: int | None = None) -> list[int]:
        return [self.bits(t) for t in range(self.total_steps if steps is None else steps)]

    def mean_bits(self) -> float:
        return sum(self.bits_list()) / self.total_steps

    def __repr__(self) -> str:
        return (f"CyclicSchedule(b_min={self.b_min}, b_max={self.b_max}, cycles={self.cycles}, "
                f"total_steps={self.total_steps}, kind={self.kind!r})")


@dataclass(frozen=True)
class GradBitsSpec:
    """A parsed grad-bits SPEC, independent of the run length."""

    kind: str
    b_min: int
    b_max: int
    cycles: int = 1

    @property
    def is_fp32(self) -> bool:
        return self.kind == "fixed" and self.b_max >= FP32_BITS

    def schedule(self, total_steps: int) -> CyclicSchedule:
        return CyclicSchedule(self.b_min, self.b_max, self.cycles, total_steps, self.kind)

    def __str__(self) -> str:
        if self.is_fp32:
            return "fp32"
        if self.kind == "fixed":
            return f"fixed:{self.b_max}"
        return f"{self.kind}:{self.b_min}-{self.b_max}x{self.cycles}"


_CYCLIC = re.compile(r"^(cosine|triangle):(\d+)-(\d+)x(\d+)$")
_FIXED = re.compile(r"^fixed:(\d+)$")
SPEC_HELP = "fp32, fixed:B, cosine:L-HxC or triangle:L-HxC (e.g. cosine:2-8x8)"


def parse_grad_bits(spec: str) -> GradBitsSpec:
    """Parse a grad-bits SPEC (fp32 | fixed:B | cosine:L-HxC | triangle:L-HxC); bad input → BitCycleError."""
    text = str(spec).strip().lower()
    if text == "fp32":
        return GradBitsSpec("fixed", FP32_BITS, FP32_BITS, 1)
    m = _FIXED.match(text)
    if m:
        b = int(m.group(1))
        _check_bits("fixed bit-width", b)
        return GradBitsSpec("fixed", b, b, 1)
    m = _CYCLIC.match(text)
    if m:
        kind, lo, hi, cycles = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        _check_bits("b_min", lo)
        _check_bits("b_max", hi)
        if lo > hi:
            raise BitCycleError(f"grad-bits {spec!r}: b_min={lo} > b_max={hi}; write the low bit-width first, e.g. {kind}:{hi}-{lo}x{cycles}")
        if cycles < 1:
            raise BitCycleError(f"grad-bits {spec!r}: the number of cycles must be >= 1")
        return GradBitsSpec(kind, lo, hi, cycles)
    raise BitCycleError(f"unknown grad-bits spec {spec!r}; use {SPEC_HELP}")
