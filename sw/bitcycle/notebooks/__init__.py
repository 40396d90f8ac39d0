"""The BitCycle notebooks as PYNQ package data.

PYNQ's ``pynq get-notebooks`` delivers every folder registered under the ``pynq.notebooks`` entry
point group; BitCycle registers this package (pyproject.toml). Its .ipynb files are symlinks to
the repository's ``notebooks/`` (the one copy that is edited and tested); building a wheel copies
their content, so ``pip install .`` on a board installs real files.
"""
