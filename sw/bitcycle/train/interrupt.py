"""Stop a training run between two steps, not inside one, when the user asks.

The first Ctrl-C (SIGINT) or SIGTERM only sets a flag; the trainer checks it after every step,
writes a checkpoint that holds the position inside the epoch and raises :class:`TrainingInterrupted`.
``--resume`` then continues from that very step, to the same final weights as an uninterrupted
run. A second Ctrl-C interrupts at once (the last checkpoint on disk stays valid: every write is
atomic); a SIGTERM while already stopping is ignored, so that ``bitcycle bench train`` can pass a
stop on to its workers whether or not the terminal's Ctrl-C reached them too.

Signal handlers exist only in the main thread, and under ``torchrun`` every rank would have to agree
on the step to stop at; there (and in worker threads) the guard stays inactive and an interrupt
falls back to the checkpoint of the last finished epoch.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after the trainer saved a mid-epoch checkpoint; the message says how to go on."""


class StopGuard:
    """Context manager: ``requested`` names the signal once one arrived (None before)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.requested is None:
            self.requested = signal.Signals(signum).name
        elif signum == signal.SIGINT:  # Ctrl-C twice: the user does not want to wait for the step
            self._restore()
            raise KeyboardInterrupt
        # a SIGTERM while already stopping (a parent passing the stop on) changes nothing

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> "StopGuard":
        if self.enabled:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
