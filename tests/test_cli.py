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


def test_bitstream_without_vendor_tools_is_one_line_exit_2(tmp_path):
    import os

    env = dict(os.environ, PATH=str(tmp_path))  # no vitis_hls / vivado anywhere on PATH
    result = _bitcycle("bitstream", "--model", "sfc", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "vitis_hls not found on PATH" in lines[0], result.stderr
