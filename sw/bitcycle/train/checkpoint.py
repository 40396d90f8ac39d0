"""Atomic file writes, checkpoints, and loading a trained model back from its run directory."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from bitcycle.errors import BitCycleError

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary readable files
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path, obj) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BitCycleError(f"no checkpoint at {path}; run without --resume to start a new run")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any load failure means a bad file
        raise BitCycleError(f"cannot read checkpoint {path} ({type(err).__name__}); delete it or use a new --out") from None


def load_trained(run_dir) -> torch.nn.Module:
    """The trained model of a ``bitcycle train`` run directory (``DIR/model.pt``), in eval mode."""
    from bitcycle.nets import get_model

    path = Path(run_dir) / MODEL if Path(run_dir).is_dir() else Path(run_dir)
    if not path.is_file():
        raise BitCycleError(f"no trained model at {path}; run `bitcycle train ... --out DIR` first")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    model = get_model(blob["model"], **blob["model_cfg"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()
