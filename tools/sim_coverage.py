"""Summarize the Verilator line/toggle coverage of `make sim` into build/sim/coverage.txt.

Every Verilator testbench built with BITCYCLE_COVERAGE=1 writes build/sim/<build>_cov/coverage.<run>.dat;
this merges them (verilator_coverage --write, kept as build/sim/coverage.dat) and counts, per RTL
source file and coverage type, the points hit at least once.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "sim"
ENTRY = re.compile(r"^C '(.*)' (\d+)$")


def parse(dat: Path) -> dict[str, int]:
    points: dict[str, int] = {}
    for line in dat.read_text(errors="replace").splitlines():
        m = ENTRY.match(line)
        if m:
            points[m.group(1)] = points.get(m.group(1), 0) + int(m.group(2))
    return points


def fields(key: str) -> dict[str, str]:
    out = {}
    for part in key.split("\x01"):
        if "\x02" in part:
            k, v = part.split("\x02", 1)
            out[k] = v
    return out


def main() -> int:
    dats = sorted(p for p in BUILD.glob("*_cov/coverage.*.dat"))
    if not dats:
        print("no coverage data: run `make sim` (BITCYCLE_COVERAGE=1) first", file=sys.stderr)
        return 2
    merged: dict[str, int] = defaultdict(int)
    for dat in dats:
        for k, v in parse(dat).items():
            merged[k] += v
    if shutil.which("verilator_coverage"):
        subprocess.run(["verilator_coverage", "--write", str(BUILD / "coverage.dat"), *map(str, dats)], check=False,
                       capture_output=True)
    table: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for key, count in merged.items():
        f = fields(key)
        kind = f.get("page", "?").split("/")[0].removeprefix("v_")
        src = Path(f.get("f", "?")).name
        cell = table[(src, kind)]
        cell[1] += 1
        cell[0] += int(count > 0)
    lines = [f"Verilator coverage of `make sim`: {len(dats)} testbench builds merged", "",
             f"{'file':<26} {'type':<8} {'hit':>6} {'points':>7} {'%':>6}"]
    for (src, kind), (hit, total) in sorted(table.items()):
        lines.append(f"{src:<26} {kind:<8} {hit:>6} {total:>7} {100.0 * hit / total:>6.1f}")
    lines += ["", "builds: " + ", ".join(d.parent.name for d in dats)]
    text = "\n".join(lines) + "\n"
    (BUILD / "coverage.txt").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
