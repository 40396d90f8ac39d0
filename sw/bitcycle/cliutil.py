"""Options every ``bitcycle`` command spells the same way, and old spellings kept as aliases.

One vocabulary: ``--set KEY=VALUE`` for model options, ``--grad-bits SPEC`` for a gradient
precision schedule (``bitcycle.schedule``), ``--quiet`` for no progress bar. An old spelling
still works and prints one ``note:`` line on stderr naming the new one (``deprecation_note``).
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


def json_object_items(text: str) -> list[tuple[str, object]]:
    """A JSON object's items in order (``--model-cfg '{"width": 64}'``, the old spelling of ``--set``)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({err.msg}); write --set KEY=VALUE instead") from None
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is a JSON {type(obj).__name__}, not an object; write --set KEY=VALUE")
    return list(obj.items())


def add_model_set(parser: argparse.ArgumentParser, json_alias: str | None = None) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.model_set``; ``json_alias`` (e.g. ``--model-cfg``)
    is a command's old spelling taking one JSON object, whose items join the ``--set`` ones in order."""
    parser.add_argument("--set", dest="model_set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="model option, e.g. --set width=64 --set dropout=0.2 (repeatable)")
    if json_alias:
        deprecated_alias(parser, json_alias, "--set KEY=VALUE", dest="model_set", type=json_object_items, extend=True)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    deprecated_alias(parser, "--no-progress", "--quiet", dest="quiet", const=True)


def deprecation_note(old: str, new: str) -> None:
    """The one line an old spelling prints (stderr, so a command's output stays parseable)."""
    print(f"note: {old} is deprecated; use {new}", file=sys.stderr)


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str, const=None, type=None,
                     extend: bool = False) -> None:
    """Accept ``old`` as ``new`` (hidden from --help) with a one-line note on stderr. ``type`` converts
    the value; ``extend`` adds its items to the list in ``dest`` instead of replacing it."""

    class _Alias(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            deprecation_note(old, new)
            value = const if values is None or values == [] else values
            if extend:
                value = [*(getattr(namespace, dest, None) or []), *value]
            setattr(namespace, dest, value)

    kwargs = {"nargs": 0} if const is not None else {"type": type}
    parser.add_argument(old, action=_Alias, dest=dest, help=argparse.SUPPRESS, **kwargs)
