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
