"""Stream width conversion, as ``hw/rtl/bitcycle_dwc.sv`` (and FINN's StreamingDataWidthConverter)
computes it: the beats are one continuous bit stream, bit 0 of each beat first, re-cut into beats
of another width. numpy only.
"""

from __future__ import annotations

from bitcycle.errors import BitCycleError


def repack_bits(beats: list[int], ibits: int, obits: int) -> list[int]:
    """Beats of ``ibits`` bits → beats of ``obits`` bits (the total must be whole output beats)."""
    if ibits < 1 or obits < 1:
        raise BitCycleError(f"repack_bits: widths must be >= 1, got {ibits} → {obits}")
    total = len(beats) * ibits
    if total % obits:
        raise BitCycleError(f"repack_bits: {len(beats)} beats of {ibits} bits are not whole beats of {obits} bits")
    stream = 0
    for i, b in enumerate(beats):
        if b >> ibits:
            raise BitCycleError(f"repack_bits: beat {i} has bits above its {ibits}")
        stream |= int(b) << (i * ibits)
    mask = (1 << obits) - 1
    return [(stream >> (j * obits)) & mask for j in range(total // obits)]
