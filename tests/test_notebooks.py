"""The PYNQ notebooks execute end to end (off-board they fall back as they say they do).

``emu``: the full notebooks, small. ``sim``: notebook 01 for a few steps on the Verilated RTL.
``pynq``: both notebooks on a board stand-in (pynq's real DMA classes over a PG021 model), and a
mismatched overlay that must stop notebook 01.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

pytestmark = pytest.mark.xdist_group("driver_sim")  # the sim run shares a Verilator build


def execute(name: str, env: dict, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BITCYCLE_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def text_of(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def test_notebooks_on_emu(tmp_path, monkeypatch):
    env = {"BITCYCLE_BACKEND": "pynq", "BITCYCLE_STEPS": "40", "BITCYCLE_HIDDEN": "32,32"}
    nb1 = execute("01_train_on_pynq.ipynb", env, tmp_path, monkeypatch)
    text = text_of(nb1)
    assert "no PYNQ device found" in text and "falling back to backend 'emu'" in text
    assert "test accuracy" in text and "saving" in text
    assert (tmp_path / "model" / "driver.json").is_file()
    nb2 = execute("02_inference.ipynb", env, tmp_path, monkeypatch)
    text = text_of(nb2)
    assert "model from" in text and "accuracy" in text
    # the plot of test images was drawn
    assert any(o.get("output_type") == "display_data" for c in nb2.cells for o in c.get("outputs", []))


@pytest.mark.rtl
def test_notebook_01_short_sim_run(tmp_path, monkeypatch):
    env = {"BITCYCLE_BACKEND": "sim", "BITCYCLE_STEPS": "3", "BITCYCLE_HIDDEN": "16,16"}
    nb1 = execute("01_train_on_pynq.ipynb", env, tmp_path, monkeypatch)
    text = text_of(nb1)
    assert "backend sim" in text and "falling back" not in text
    assert "saving" in text


def test_notebook_02_without_a_trained_model(tmp_path, monkeypatch):
    nb2 = execute("02_inference.ipynb", {"BITCYCLE_BACKEND": "emu", "BITCYCLE_TEST_IMAGES": "60"}, tmp_path, monkeypatch)
    text = text_of(nb2)
    assert "training a small one on the emulator first" in text and "60 test images" in text


def _board_env(tmp_path, monkeypatch, **extra) -> dict:
    """A model folder as a board user has it (compiled driver.json beside the overlay's .bit/.hwh)
    and a kernel that sees a PYNQ device: tests/board_standin.py, pynq's real DMA over a PG021 model."""
    from bitcycle.driver import spec_for_model

    model = tmp_path / "model"
    spec_for_model("mlp", "digits", hidden=[32, 32]).save(model / "driver.json")
    (model / "bitcycle.bit").write_bytes(b"bit")
    (model / "bitcycle.hwh").write_text("<hwh/>")
    tests = Path(__file__).resolve().parent
    path = os.pathsep.join([str(tests / "board_site"), str(tests), os.environ.get("PYTHONPATH", "")])
    return {"BITCYCLE_BACKEND": "pynq", "BITCYCLE_STEPS": "20", "BITCYCLE_BOARD_STANDIN": "1", "PYTHONPATH": path,
            **extra}


def test_notebooks_on_a_board(tmp_path, monkeypatch):
    """The board path itself: no fallback, the overlay and model from one folder, 02 loads what 01 saved."""
    nb1 = execute("01_train_on_pynq.ipynb", _board_env(tmp_path, monkeypatch), tmp_path, monkeypatch)
    text = text_of(nb1)
    assert "falling back" not in text and "NOTE:" not in text
    assert "model and overlay from" in text and "backend pynq:" in text and "test accuracy" in text
    assert json.loads((tmp_path / "model" / "driver.json").read_text())["params"] == "params.npz"
    nb2 = execute("02_inference.ipynb", _board_env(tmp_path, monkeypatch), tmp_path, monkeypatch)
    text = text_of(nb2)
    assert "falling back" not in text and "backend pynq" in text and "accuracy" in text


def test_notebook_on_a_board_with_another_overlay_stops(tmp_path, monkeypatch):
    """On a board a mismatched overlay is an error naming both files, never a fallback to emu."""
    env = _board_env(tmp_path, monkeypatch, BITCYCLE_BOARD_STANDIN_MISMATCH="WMEM_DEPTH")
    with pytest.raises(CellExecutionError) as caught:
        execute("01_train_on_pynq.ipynb", env, tmp_path, monkeypatch)
    assert re.search(r"overlay .*bitcycle.bit was built with other parameters than .*driver.json says", str(caught.value))
    assert caught.value.ename == "BitCycleError"  # raised, so the notebook did not fall back to emu
