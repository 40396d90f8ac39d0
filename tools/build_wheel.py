"""`make wheel`: build dist/bitcycle-<version>-py3-none-any.whl, the offline board install.

The sources (pyproject.toml, setup.py, README.md, sw/) are copied to a temporary directory first, so
the build never reads stale files from the project's build/ folder and leaves no egg-info behind;
notebook symlinks are copied as files. The wheel is then checked: pure Python, numpy its only base
requirement, the packaged digits and notebooks inside.

    python tools/build_wheel.py [--dist DIR]
"""

from __future__ import annotations

import argparse
import email
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md")
MUST_CONTAIN = ("bitcycle/data/digits.npz", "bitcycle/cli.py", "bitcycle/driver/accelerator.py",
                "bitcycle/notebooks/01_train_on_pynq.ipynb", "bitcycle/compile/templates/bitserial_mvau_wrapper.v.in")


def build(dist: Path) -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bitcycle-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCES:
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "sw", src / "sw", symlinks=False,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints"))
        out = Path(tmp) / "out"
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                               "--wheel-dir", str(out), str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"build_wheel: pip wheel failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        (wheel,) = out.glob("bitcycle-*.whl")
        target = dist / wheel.name
        shutil.copy2(wheel, target)
    check(target)
    return target


def check(wheel: Path) -> dict:
    """The wheel's metadata and contents as the board needs them; SystemExit naming what is wrong."""
    if not wheel.name.endswith("-py3-none-any.whl"):
        sys.exit(f"build_wheel: {wheel.name} is not a pure-Python wheel (py3-none-any)")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
    missing = [n for n in MUST_CONTAIN if n not in names]
    if missing:
        sys.exit(f"build_wheel: {wheel.name} lacks {', '.join(missing)}")
    base = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    if base != ["numpy"]:
        sys.exit(f"build_wheel: the base install must need numpy only, the wheel requires {base}")
    return {"name": meta["Name"], "version": meta["Version"], "requires_python": meta["Requires-Python"],
            "requires": base, "files": len(names)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default=str(ROOT / "dist"))
    args = parser.parse_args()
    wheel = build(Path(args.dist))
    info = check(wheel)
    print(f"{wheel}  ({info['files']} files; requires {', '.join(info['requires'])}; "
          f"Python {info['requires_python']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
