"""Source installs need setuptools >= 77 (PEP 621 metadata with an SPDX license). Older setuptools
(59 on Ubuntu 22.04 / PYNQ 3.x images) would ignore pyproject.toml and install "UNKNOWN-0.0.0", so
this stops it with one line naming what to use instead: the wheel from `make wheel`."""

import sys

import setuptools

_major = int(setuptools.__version__.split(".")[0])
if _major < 77:
    sys.exit(f"bitcycle: setuptools {setuptools.__version__} cannot build bitcycle from source (needs setuptools>=77); "
             "on a board install the wheel built with `make wheel`: pip install --no-index --no-deps "
             "bitcycle-*-py3-none-any.whl (or upgrade: pip install 'setuptools>=77')")

setuptools.setup()
