"""The seed of a cocotb run: logged (RANDOM_SEED= reproduces it) and turned into the test's generator."""

from __future__ import annotations

import random

import cocotb


def seeded_rng() -> random.Random:
    seed = cocotb.RANDOM_SEED
    cocotb.log.info("RANDOM_SEED=%d", seed)
    return random.Random(seed)
