"""The offline board install: `make wheel`'s wheel in a fresh board-like venv (numpy 1.x, old setuptools and
pip, no torch/FINN/scikit-learn, no index), `bitcycle run --backend emu --model sfc --dataset digits` there,
and the source install on setuptools 59 stopping with one line instead of "UNKNOWN-0.0.0".

The venvs are cached under build/test_wheel/ (created once with the registries; the wheel itself is
always installed with --no-index --no-deps)."""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_wheel  # noqa: E402

pytestmark = [pytest.mark.xdist_group("wheel"), pytest.mark.slow]
CACHE = ROOT / "build" / "test_wheel"
# PYNQ 3.x images (Ubuntu 22.04) and PYNQ 2.7 images (Ubuntu 20.04, Python 3.8): their pip and setuptools
BOARDS = {
    "pynq3": {"python": "3.10", "pins": ["pip==22.0.2", "numpy==1.26.4", "setuptools==59.6.0"]},
    "pynq27": {"python": "3.8", "pins": ["pip==20.0.2", "numpy==1.24.4", "setuptools==45.2.0"]},
}
BOARD_PACKAGES = ("bitcycle.driver", "bitcycle.golden", "bitcycle.hwif", "bitcycle.data")
NOT_ON_BOARD = ("bitcycle.driver.sim_server",)  # runs beside the simulator (cocotb), on the development machine


def _runs(exe: str) -> bool:
    try:
        return subprocess.run([exe, "-c", "import venv"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def find_python(version: str) -> str | None:
    """An interpreter of ``version``: on PATH, else one of pyenv's, else this one if it is that version."""
    exe = shutil.which(f"python{version}")
    if exe and _runs(exe):
        return exe
    if shutil.which("pyenv"):
        bare = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        for v in sorted((v for v in bare if v.startswith(version + ".")), reverse=True):
            prefix = subprocess.run(["pyenv", "prefix", v], capture_output=True, text=True).stdout.strip()
            exe = str(Path(prefix) / "bin" / "python3")
            if prefix and _runs(exe):
                return exe
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    return None


@contextlib.contextmanager
def locked(board: str):
    """One run at a time per cached venv (other checkouts' test runs share build/test_wheel/)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{board}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def board_venv(board: str) -> Path:
    cfg = BOARDS[board]
    exe = find_python(cfg["python"])
    if exe is None:
        pytest.fail(f"no Python {cfg['python']} for the {board} board venv: install it (e.g. pyenv install {cfg['python']})")
    venv = CACHE / f"{board}-py{cfg['python']}"
    stamp = venv / ".pins"
    want = " ".join(cfg["pins"])
    if not (stamp.is_file() and stamp.read_text() == want):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([exe, "-m", "venv", str(venv)], check=True, timeout=300)
        py = str(venv / "bin" / "python")
        # --no-cache-dir: a pip wheel cache shared with another run being written at the same time
        # once left a broken pip here (ModuleNotFoundError inside pip itself)
        for pins in (cfg["pins"][:1], cfg["pins"][1:]):
            subprocess.run([py, "-m", "pip", "install", "-q", "--no-cache-dir", *pins], check=True, timeout=600)
        stamp.write_text(want)
    return venv


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel.build(tmp_path_factory.mktemp("dist"))


def test_wheel_metadata(wheel):
    info = build_wheel.check(wheel)
    assert wheel.name == "bitcycle-0.1.0-py3-none-any.whl"
    assert info["requires"] == ["numpy"] and info["requires_python"] == ">=3.8"


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_install_offline_and_run(board, wheel, tmp_path):
    with locked(board):
        _install_and_run(board, wheel, tmp_path)


def _install_and_run(board, wheel, tmp_path):
    venv = board_venv(board)
    py, env = str(venv / "bin" / "python"), _clean_env()
    subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", "bitcycle"], env=env, capture_output=True)
    inst = subprocess.run([py, "-m", "pip", "install", "--no-index", "--no-deps", str(wheel)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0 and "Successfully installed bitcycle-0.1.0" in inst.stdout, inst.stdout + inst.stderr
    # the venv has numpy 1.x and no development stack; every board module imports there
    probe = ("import importlib, importlib.util as u, pkgutil, json, numpy, bitcycle\n"
             f"mods = []\nfor pkg in {BOARD_PACKAGES!r}:\n"
             "    m = importlib.import_module(pkg); mods.append(pkg)\n"
             "    mods += [i.name for i in pkgutil.iter_modules(m.__path__, pkg + '.')]\n"
             f"mods = [m for m in mods if m not in {NOT_ON_BOARD!r}]\n"
             "for m in mods: importlib.import_module(m)\n"
             "print(json.dumps({'numpy': numpy.__version__, 'file': bitcycle.__file__, 'n': len(mods),\n"
             "  'absent': [p for p in ('torch', 'sklearn', 'scipy', 'finn', 'qonnx', 'brevitas') if u.find_spec(p) is None]}))")
    out = subprocess.run([py, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    # every board module of the source tree was imported there
    want = [p for pkg in BOARD_PACKAGES for p in (ROOT / "sw" / Path(*pkg.split("."))).glob("*.py")]
    n_src = len(want) - len(NOT_ON_BOARD)
    assert info["numpy"].startswith("1.") and info["file"].startswith(str(venv)) and info["n"] == n_src, (info, n_src)
    assert info["absent"] == ["torch", "sklearn", "scipy", "finn", "qonnx", "brevitas"]
    run = subprocess.run([str(venv / "bin" / "bitcycle"), "run", "--backend", "emu", "--model", "sfc", "--dataset",
                          "digits", "--steps", "30", "--out", "run", "--quiet"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["backend"] == "emu" and m["steps"] == 30 and m["data_source"] == "bitcycle.data digits.npz"
    assert m["test_accuracy"] > 0.4, m["test_accuracy"]  # 10 classes: it trained (~0.7 after 30 steps)
    assert (tmp_path / "run" / "params.npz").is_file() and (tmp_path / "run" / "driver.json").is_file()


def test_source_install_on_setuptools_59_says_what_to_use(tmp_path):
    with locked("pynq3"):
        venv = board_venv("pynq3")
        src = tmp_path / "src"
        src.mkdir()
        for name in build_wheel.SOURCES:
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "sw", src / "sw", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-build-isolation",
                               "--no-deps", "--target", str(tmp_path / "t"), str(src)], env=_clean_env(),
                              capture_output=True, text=True, timeout=300)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "UNKNOWN" not in text, text
        lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("bitcycle: setuptools 59.6.0")]
        assert len(lines) == 1 and "needs setuptools>=77" in lines[0] and "make wheel" in lines[0], text


def _runtime_annotations(tree: ast.AST):
    """Annotations Python 3.8 evaluates (no `from __future__ import annotations`) that use 3.9/3.10 syntax."""
    for node in ast.walk(tree):
        for ann in [getattr(node, "annotation", None), getattr(node, "returns", None)]:
            if ann is None:
                continue
            for sub in ast.walk(ann):
                if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.BitOr):
                    yield ann
                if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and \
                        sub.value.id in ("list", "dict", "tuple", "set", "frozenset", "type"):
                    yield ann


def test_board_modules_parse_as_python_38():
    files = [p for pkg in BOARD_PACKAGES for p in (ROOT / "sw" / Path(*pkg.split("."))).glob("*.py")]
    files += [ROOT / "sw" / "bitcycle" / n for n in ("__init__.py", "errors.py", "cli.py", "cliutil.py", "schedule.py")]
    assert len(files) >= 15
    for f in files:
        src = f.read_text()
        tree = ast.parse(src, filename=str(f), feature_version=(3, 8))
        if "from __future__ import annotations" not in src:
            bad = list(_runtime_annotations(tree))
            assert not bad, f"{f.name}:{bad[0].lineno}: 3.9+ annotation evaluated at import on Python 3.8"
        # dict | dict (PEP 584) is Python 3.9+ at run time, though 3.8 parses it
        merges = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
                  and any(isinstance(side, (ast.Dict, ast.DictComp)) for side in (n.left, n.right))]
        assert not merges, f"{f.name}:{merges[0].lineno}: dict | dict needs Python 3.9; use {{**a, **b}}"
