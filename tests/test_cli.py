"""The command line: help lists the subcommands, bad input is one line and exit code 2."""

import subprocess
import sys

from bitcycle.cli import COMMANDS, main


def _bitcycle(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bitcycle.cli", *args], capture_output=True, text=True, env=env)


def test_help_lists_every_subcommand():
    result = _bitcycle("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert f"  {name}" in result.stdout


def test_unknown_subcommand_exits_2(capsys):
    try:
        main(["no-such-thing"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "unknown subcommand 'no-such-thing'" in capsys.readouterr().err


def test_third_party_warnings_stay_quiet(tmp_path):
    # brevitas warns at import about an optional CUDA package; a user's terminal should not show it
    import os

    quiet = _bitcycle("export", "--model", "tfc", "--out", str(tmp_path / "q"))
    assert quiet.returncode == 0, quiet.stderr
    assert "Warning" not in quiet.stderr, quiet.stderr
    shown = _bitcycle("export", "--model", "tfc", "--out", str(tmp_path / "s"),
                      env=dict(os.environ, BITCYCLE_WARNINGS="1"))
    assert "Warning" in shown.stderr  # the switch works, so the quiet run above proves something


def test_old_option_spellings_are_aliases_with_a_note(capsys):
    """One vocabulary across commands: --quiet everywhere; --no-progress still works, with a note."""
    import argparse

    from bitcycle.cliutil import add_quiet

    parser = argparse.ArgumentParser()
    add_quiet(parser)
    assert parser.parse_args(["--quiet"]).quiet is True
    assert parser.parse_args([]).quiet is False
    assert parser.parse_args(["--no-progress"]).quiet is True
    assert "note: --no-progress is deprecated; use --quiet" in capsys.readouterr().err
    assert "--no-progress" not in parser.format_help()


def _parser(command):
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog=f"bitcycle {command}")
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    return parser


def test_one_vocabulary_across_commands(capsys):
    """--set for model options, --grad-bits SPEC for a schedule, --quiet for no bar: the same
    spelling (and meaning) in every command that has the option; old spellings hidden from --help."""
    for command in ("train", "compile", "export", "bitstream"):
        args = _parser(command).parse_args(["--model", "tfc", "--set", "width=16", "--set", "hidden=[8, 8]",
                                            *(["--out", "x"] if command == "train" else [])])
        assert args.model_set == [("width", 16), ("hidden", [8, 8])], command
    for command in ("train", "run", "compile", "bitstream"):
        p = _parser(command)
        extra = ["--out", "x"] if command == "train" else []
        assert p.parse_args([*extra, "--quiet"]).quiet is True and p.parse_args(extra).quiet is False, command
        assert p.parse_args([*extra, "--grad-bits", "cosine:2-8x4"]).grad_bits == "cosine:2-8x4", command
        text = p.format_help()
        assert "--no-progress" not in text and "--model-cfg" not in text, command
    assert "note:" not in capsys.readouterr().err
    for command in ("compile", "export"):
        args = _parser(command).parse_args(["--model", "tfc", "--model-cfg", '{"width": 16}'])
        assert args.model_set == [("width", 16)]
        assert capsys.readouterr().err == "note: --model-cfg is deprecated; use --set KEY=VALUE\n"
