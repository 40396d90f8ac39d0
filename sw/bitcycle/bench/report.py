"""``bitcycle bench report`` (``make report``): one page over every benchmark that has run.

Reads whatever ``build/bench/*.json`` exist and writes ``build/report/index.html`` and
``report.md``, with each benchmark's table (rendered from its JSON by the benchmark's own table
function where it has one, so the page never shows numbers the JSON does not hold), a plot drawn
from the same JSON, and where and when the figures were measured. A known benchmark with no JSON
is listed as missing with the command that makes it — never with older numbers. Everything the
page references lies inside the report folder.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bitcycle.errors import BitCycleError


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


# -- plots, one per kind of benchmark, each from its JSON only ---------------------------------
def plot_hw(data: dict) -> Optional[bytes]:
    points = data.get("points") or []
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in sorted({(p["config"], p["mode_name"]) for p in points}):
        pts = sorted((p["bits"], p["cycles"]) for p in points if (p["config"], p["mode_name"]) == key)
        ax.plot(*zip(*pts), "o-", label=f"{key[0]} {key[1]}")
    ax.set(xlabel="run-time bits", ylabel="engine cycles", title="cycles per matrix vs bits (Verilator)")
    ax.legend(fontsize=7)
    return _png(fig)


def plot_synth(data: dict) -> Optional[bytes]:
    points = [p for p in data.get("points", []) if p.get("lut") and p.get("pe") and p.get("simd")]
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    lanes = [p["pe"] * p["simd"] for p in points]
    ax.plot(lanes, [p["lut"] / n for p, n in zip(points, lanes)], "o-", label="BitCycle engine (Yosys)")
    ax.axhline(4.5, ls="--", c="gray", label="FINN LFC-W1A1, all in (4.5)")
    ax.set(xscale="log", xlabel="PE × SIMD lanes", ylabel="LUT per lane", title="array cost vs size")
    ax.legend(fontsize=7)
    return _png(fig)


def plot_train(data: dict) -> Optional[bytes]:
    from bitcycle.bench.train import plot

    runs = data.get("runs") or []
    return plot(runs) if runs else None


def plot_driver(data: dict) -> Optional[bytes]:
    rows = [r for r in data.get("driver", []) if "board_ms" in r]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['backend']} {r['bits']} b" for r in rows]
    bottom = [0.0] * len(rows)
    for part in rows[0]["board_ms"]:
        values = [r["board_ms"][part] for r in rows]
        ax.bar(labels, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set(ylabel="projected board ms / step", title="training step on the board, by part (projection)")
    ax.legend(fontsize=7)
    return _png(fig)


def plot_memory(data: dict) -> Optional[bytes]:
    runs = data.get("runs") or ([data] if "standard_bytes" in data else [])
    if not runs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r.get('model', '?')} b{r.get('batch', '?')}" for r in runs]
    x = range(len(runs))
    ax.bar([i - 0.2 for i in x], [r["standard_bytes"] / 2**20 for r in runs], 0.4, label="standard")
    ax.bar([i + 0.2 for i in x], [r["efficient_bytes"] / 2**20 for r in runs], 0.4, label="1-bit sign(x)")
    ax.set_xticks(list(x), labels, rotation=30, fontsize=7)
    ax.set(ylabel="MiB saved for backward", title="training memory")
    ax.legend(fontsize=7)
    return _png(fig)


def plot_dataflow(data: dict) -> Optional[bytes]:
    rows = [r for r in data.get("rows", []) if r.get("LUT")]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ips = r.get("images_per_s_measured") or r["images_per_s_estimated"]
        ax.scatter(r["LUT"], ips, c="C0", marker="o" if r.get("images_per_s_measured") else "x")
        ax.annotate(r["model"], (r["LUT"], ips), fontsize=7)
        f = r.get("finn_stock") or {}
        if f.get("LUT"):
            ax.scatter(f["LUT"], f["images_per_s_estimated"], c="C1", marker="s")
            ax.annotate(f"{r['model']} FINN", (f["LUT"], f["images_per_s_estimated"]), fontsize=7)
    ax.scatter([], [], c="C0", marker="o", label="BitCycle, rtlsim-measured")
    ax.scatter([], [], c="C0", marker="x", label="BitCycle, estimated")
    ax.scatter([], [], c="C1", marker="s", label="FINN stock flow, estimated")
    ax.set(xscale="log", yscale="log", xlabel="LUT", ylabel="images / s", title="dataflow throughput vs size")
    ax.legend(fontsize=7)
    return _png(fig)


def plot_peer(data: dict) -> Optional[bytes]:
    trainers = data.get("trainers") or {}
    if not trainers:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(trainers)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [trainers[n]["wall_per_epoch_s"] for n in names], 0.4, label="wall")
    ax.bar([i + 0.2 for i in x], [trainers[n]["cpu_per_epoch_s"] for n in names], 0.4, label="CPU")
    ax.set_xticks(list(x), names, fontsize=7)
    ax.set(ylabel="s / epoch (median of rounds)", title="training epoch time beside Brevitas' bnn_pynq recipe")
    ax.legend(fontsize=7)
    return _png(fig)


# -- tables ------------------------------------------------------------------------------------
def _own_table(module: str, function: str, shape: Callable[[dict], dict] = lambda d: d) -> Callable[[dict], str]:
    """The benchmark's own Markdown table function, applied to its JSON (``shape`` adapts a variant)."""

    def table(data: dict) -> str:
        return getattr(importlib.import_module(module), function)(shape(data))

    return table


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "/")


def generic_table(data: dict) -> str:
    """Scalars as one key/value table, then each list of records as a table of its scalar fields."""
    scalars = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool)) and k != "bench"}
    parts = []
    if scalars:
        parts.append("| field | value |\n|---|---|\n" + "\n".join(f"| {k} | {_cell(v)} |" for k, v in scalars.items()))
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            cols = [c for c in value[0] if all(not isinstance(r.get(c), (dict, list)) for r in value)][:12]
            if cols:
                rows = "\n".join("| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in value)
                parts.append(f"**{key}**\n\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n" + rows)
    return "\n\n".join(parts) or "(no tabular fields)"


@dataclass(frozen=True)
class Bench:
    name: str         # build/bench/<name>.json
    title: str
    make: str         # the command that writes it
    table: Callable[[dict], str] = generic_table
    plot: Optional[Callable[[dict], Optional[bytes]]] = None


BENCHES = [
    Bench("hw", "Engine cycles vs run-time bits", "make bench-hw", plot=plot_hw),
    Bench("synth", "Engine synthesis (Yosys, xc7)", "make synth", plot=plot_synth),
    Bench("dataflow", "FINN dataflow in RTL: images/s and LUT", "make bench-dataflow",
          _own_table("bitcycle.bench.dataflow", "table"), plot_dataflow),
    Bench("train", "Cyclic-precision training", "make bench-train",
          _own_table("bitcycle.bench.train", "markdown_table"), plot_train),
    Bench("peer", "Training speed beside Brevitas' own trainer", "make bench-peer",
          _own_table("bitcycle.bench.peer", "table"), plot_peer),
    Bench("memory", "Training memory: 1-bit stored activations", "make bench-memory",
          _own_table("bitcycle.bench.memory", "markdown", lambda d: d if "runs" in d else {"runs": [d]}), plot_memory),
    Bench("grad_error", "Quantised vs float weight gradients", "make bench-grad-error",
          _own_table("bitcycle.bench.grad_error", "markdown_table")),
    Bench("driver", "A training step through the driver", "make bench-driver",
          _own_table("bitcycle.bench.driver", "markdown"), plot_driver),
]


def _provenance(data: dict, path: Path) -> str:
    p = data.get("provenance") or {}
    date = p.get("date") or time.strftime("%Y-%m-%dT%H:%M:%SZ (file time)", time.gmtime(path.stat().st_mtime))
    machine = p.get("machine") or data.get("host") or "not recorded"
    where = f"{machine} ({p['cpu']}, {p.get('cores')} cores)" if p.get("cpu") else machine
    return f"measured {date} on {where}, commit {p.get('commit', 'not recorded')}"


def build(bench_dir: Path, out_dir: Path) -> dict:
    """Write ``out_dir/index.html`` and ``report.md`` (plus plots) from ``bench_dir/*.json``."""
    import markdown

    bench_dir, out_dir = Path(bench_dir), Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a plot of a benchmark that no longer has a JSON must not linger
    out_dir.mkdir(parents=True)
    known = {b.name for b in BENCHES}
    extra = [Bench(p.stem, p.stem, "(not a listed benchmark)") for p in sorted(bench_dir.glob("*.json"))
             if p.stem not in known]
    sections, summary = [], {"present": [], "missing": []}
    for b in BENCHES + extra:
        path = bench_dir / f"{b.name}.json"
        md = [f"## {b.title}", ""]
        if not path.is_file():
            md += [f"*missing*: no `{path.name}` — run `{b.make}`."]
            summary["missing"].append(b.name)
            sections.append("\n".join(md))
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise BitCycleError(f"{path}: not valid JSON ({err}); rerun `{b.make}`") from None
        md += [f"`{path.name}`, {_provenance(data, path)}.", "", b.table(data)]
        image = b.plot(data) if b.plot else None
        if image:
            (out_dir / f"{b.name}.png").write_bytes(image)
            md += ["", f"![{b.title}]({b.name}.png)"]
        summary["present"].append(b.name)
        sections.append("\n".join(md))
    head = ["# BitCycle benchmark report", "",
            f"Built {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from `{bench_dir}`: "
            f"{len(summary['present'])} benchmarks present, {len(summary['missing'])} missing.", ""]
    text = "\n".join(head) + "\n\n" + "\n\n".join(sections) + "\n"
    (out_dir / "report.md").write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>BitCycle benchmarks</title><style>"
            "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:.5em 0;font-size:.85em}td,th{border:1px solid #ccc;"
            "padding:.2em .5em}th{background:#f3f3f3}img{max-width:100%}h2{border-bottom:1px solid #ddd}"
            f"</style></head><body>{body}</body></html>\n")
    (out_dir / "index.html").write_text(page)
    summary["index"] = str(out_dir / "index.html")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench-dir", default="build/bench", help="where the benchmarks wrote their JSON")
    parser.add_argument("--out", default="build/report", help="report folder (index.html, report.md, plots)")


def run(args: argparse.Namespace) -> int:
    summary = build(Path(args.bench_dir), Path(args.out))
    print(f"report: {summary['index']} ({len(summary['present'])} benchmarks; missing: "
          f"{', '.join(summary['missing']) or 'none'})")
    return 0
