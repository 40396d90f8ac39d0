"""Precision schedules: the formula at every step, the SPEC parser, and the one-line errors."""

import math
import subprocess
import sys

import pytest

from bitcycle.errors import BitCycleError
from bitcycle.schedule import CyclicSchedule, GradBitsSpec, parse_grad_bits


def test_cosine_small_run_exact():
    # period 4: phases 0, 1/4, 1/2, 3/4 → 2 + 3·(1 − cos) = 2, 2.88, 5, 7.12
    assert CyclicSchedule(2, 8, 2, 8).bits_list() == [2, 3, 5, 7, 2, 3, 5, 7]


def test_triangle_small_run_exact():
    assert CyclicSchedule(2, 8, 2, 8, kind="triangle").bits_list() == [2, 5, 8, 5, 2, 5, 8, 5]


def test_fixed():
    assert CyclicSchedule(8, 8, 1, 5, kind="fixed").bits_list() == [8] * 5
    assert CyclicSchedule(3, 6, 2, 4, kind="fixed").bits_list() == [6] * 4


@pytest.mark.parametrize("b_min,b_max,cycles,total", [(2, 8, 3, 37), (3, 8, 32, 1000), (1, 16, 1, 11), (4, 4, 2, 9)])
def test_cosine_formula_every_step(b_min, b_max, cycles, total):
    sched = CyclicSchedule(b_min, b_max, cycles, total)
    period = total / cycles
    for t in range(total):
        x = b_min + 0.5 * (b_max - b_min) * (1 - math.cos(math.pi * ((t % period) / period)))
        assert sched.bits(t) == math.floor(x + 0.5), t
        assert b_min <= sched.bits(t) <= b_max


def test_cycles_restart_low():
    sched = CyclicSchedule(2, 8, 4, 400)
    starts = [sched.bits(int(c * 100)) for c in range(4)]
    assert starts == [2, 2, 2, 2]
    assert max(sched.bits_list()) == 8


def test_mean_bits_cosine_2_8():
    # the mean of the cosine 2..8 schedule is ≈ 5 bits: 37.5 % fewer engine cycles than 8 bits
    assert abs(CyclicSchedule(2, 8, 8, 8000).mean_bits() - 5.0) < 0.01


@pytest.mark.parametrize("spec,expect", [
    ("fp32", GradBitsSpec("fixed", 32, 32, 1)),
    ("fixed:8", GradBitsSpec("fixed", 8, 8, 1)),
    ("cosine:2-8x8", GradBitsSpec("cosine", 2, 8, 8)),
    ("triangle:3-6x2", GradBitsSpec("triangle", 3, 6, 2)),
    (" Cosine:2-8x4 ", GradBitsSpec("cosine", 2, 8, 4)),
])
def test_parse(spec, expect):
    got = parse_grad_bits(spec)
    assert got == expect
    assert parse_grad_bits(str(got)) == got


def test_fp32_is_32_bits_everywhere():
    spec = parse_grad_bits("fp32")
    assert spec.is_fp32 and spec.schedule(10).bits_list() == [32] * 10


@pytest.mark.parametrize("spec,words", [
    ("cosine:8-2x8", "b_min=8 > b_max=2"),
    ("fixed:0", "outside 1..32"),
    ("fixed:33", "outside 1..32"),
    ("cosine:2-40x8", "outside 1..32"),
    ("cosine:2-8x0", "cycles must be >= 1"),
    ("sine:2-8x8", "unknown grad-bits spec"),
    ("8", "unknown grad-bits spec"),
])
def test_parse_errors(spec, words):
    with pytest.raises(BitCycleError) as err:
        parse_grad_bits(spec)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("args", [(0, 8, 1, 10), (2, 33, 1, 10), (5, 4, 1, 10), (2, 8, 0, 10), (2, 8, 1, 0), (2, 8, 11, 10)])
def test_constructor_errors(args):
    with pytest.raises(BitCycleError):
        CyclicSchedule(*args)
    with pytest.raises(BitCycleError):
        CyclicSchedule(2, 8, 1, 10, kind="square")
    with pytest.raises(BitCycleError):
        CyclicSchedule(2, 8, 1, 10).bits(-1)


def test_schedule_imports_no_torch():
    code = "import sys, bitcycle.schedule; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
