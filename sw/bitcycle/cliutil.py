"""Options every ``bitcycle`` command spells the same way, and old spellings kept as aliases.

One vocabulary: ``--set KEY=VALUE`` for model options, ``--grad-bits SPEC`` for a gradient
precision schedule (``bitcycle.quant.schedule``), ``--quiet`` for no progress bar.
"""

from __future__ import annotations

import argparse
import json
import sys


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON where it parses (numbers, lists), else as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: write KEY=VALUE, e.g. width=64")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_model_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="model_set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="model option, e.g. --set width=64 --set dropout=0.2 (repeatable)")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    deprecated_alias(parser, "--no-progress", "--quiet", dest="quiet", const=True)


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str, const=None) -> None:
    """Accept ``old`` as ``new`` (hidden from --help) with a one-line note on stderr."""

    class _Alias(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"note: {old} is deprecated; use {new}", file=sys.stderr)
            setattr(namespace, dest, const if values is None or values == [] else values)

    kwargs = {"nargs": 0} if const is not None else {}
    parser.add_argument(old, action=_Alias, dest=dest, help=argparse.SUPPRESS, **kwargs)
