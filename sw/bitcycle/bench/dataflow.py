"""`bitcycle bench dataflow` (`make bench-dataflow`): the zoo's generated dataflows at the pynq-z2
default folding, measured, beside FINN's stock flow on the same models.

Per model: ``bitcycle compile`` (untrained weights), then ``bitcycle rtlsim`` — the whole dataflow
(MLPs and CNNs: sliding windows, width converters, max-pools, BitSerialMVAU layers, FIFOs) as one
Verilator model: measured cycles/image and mismatches (MLPs and cnv-fmnist on Fashion-MNIST test
images, the 32×32×3 cnv on random images);
* LUT/BRAM36: compile's resources.json (BitSerialMVAU: the model fitted to Yosys runs by
  ``bench compile-lut``; FINN's layers: FINN's estimates);
* FINN stock: the same graph before BitCycle's mapping (FINN MVAU layers), FINN's SpecializeLayers and
  SetFolding for the cycles/image our folding reached, FINN's estimates.
Writes build/bench/dataflow.json and dataflow.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bitcycle.bench.provenance import provenance

MODELS = {"tfc": ["--model", "tfc"], "sfc": ["--model", "sfc"], "lfc": ["--model", "lfc"],
          # BNN-PYNQ's LFC-W1A1 binarises the image: the first layer is W1A1 like the rest
          "lfc-1bit-input": ["--model", "lfc", "--set", "in_bits=1"],
          "cnv": ["--model", "cnv"], "cnv-fmnist": ["--model", "models/cnv-fmnist.toml"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="build/bench", help="directory for dataflow.json / .md")
    parser.add_argument("--images", type=int, default=20, help="images per rtlsim (a full-size CNN simulates slowly: a few)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))


def _finn_stock(build: Path, part: str, target_cycles: int, clock_mhz: float) -> dict:
    from finn.transformation.fpgadataflow.set_folding import SetFolding
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.folding import resource_report
    from bitcycle.errors import BitCycleError

    hw = build / "intermediate_models" / "step_to_hw_layers.onnx"  # FINN's MVAUs, before the engine mapping
    if not hw.is_file():
        raise BitCycleError(f"{hw} is missing: the stock-folding comparison needs a compile that ran step_to_hw_layers")
    model = _dataflow_only(ModelWrapper(str(hw))).transform(SpecializeLayers(part))
    model = model.transform(SetFolding(target_cycles_per_frame=target_cycles, mvau_wwidth_max=1024))
    rep = resource_report(model, part, clock_mhz)
    return {"images_per_s_estimated": rep["images_per_s"], "cycles_per_image": rep["cycles_per_image"],
            "LUT": rep["total"]["LUT"], "BRAM36": rep["total"]["BRAM36"], "DSP": rep["total"]["DSP"], "fits": rep["fits"]}


def cli(argv: list[str]) -> int:
    """One bitcycle command in its own process (a layer simulation run after an in-process compile
    once died with SIGSEGV; the tests run compile in a subprocess too)."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "bitcycle.cli", *argv], env=dict(os.environ)).returncode


def _dataflow_only(model):
    """The graph's dataflow partition: host nodes (input quantiser, head) dropped, as FINN's
    CreateDataflowPartition leaves it for SetFolding."""
    graph = model.graph
    hw = [n for n in graph.node if n.domain.startswith("finn.custom_op.fpgadataflow")]
    for n in list(graph.node):
        if n not in hw:
            graph.node.remove(n)
    for io, name in ((graph.input, hw[0].input[0]), (graph.output, hw[-1].output[0])):
        vi = next((v for v in graph.value_info if v.name == name), None) or next(v for v in io if v.name == name)
        if vi in graph.value_info:
            graph.value_info.remove(vi)
        while len(io):
            io.pop()
        io.append(vi)
    return model


def run(args) -> int:
    from tqdm import tqdm

    from bitcycle.errors import BitCycleError

    out = Path(args.out)
    work = out / "dataflow"
    work.mkdir(parents=True, exist_ok=True)
    names = [m for m in args.models.split(",") if m]
    bad = [m for m in names if m not in MODELS]
    if bad:
        raise BitCycleError(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
    rows = []
    for name in tqdm(names, desc="dataflow", unit="model"):
        build = work / name
        t0 = time.time()
        if cli(["compile", *MODELS[name], "--dataset", "random", "--check-images", "2", "--part", "pynq-z2",
                "--out", str(build)]) != 0:
            raise BitCycleError(f"compile of {name} failed")
        res = json.loads((build / "resources.json").read_text())
        clock = res["clock_mhz"]
        row = {"model": name, "LUT": res["total"]["LUT"], "BRAM36": res["total"]["BRAM36"], "DSP": res["total"]["DSP"],
               "fits": res["fits"],
               "images_per_s_estimated": res["images_per_s"], "expected_cycles_per_image": res["cycles_per_image"]}
        dataset = "random" if name == "cnv" else "fashion-mnist"
        (build / "rtlsim.json").unlink(missing_ok=True)
        rc = cli(["rtlsim", "--build", str(build), "--images", str(args.images), "--dataset", dataset])
        if not (build / "rtlsim.json").is_file():  # the build or the run failed: say so in the row
            log = build / "rtlsim" / "build" / "build.log"
            err = next((l for l in log.read_text().splitlines() if "%Error" in l), "?") if log.is_file() else "?"
            row.update({"measured_by": f"rtlsim failed (exit {rc}): {err[:160]}", "mismatches": None,
                        "cycles_per_image_measured": None, "images_per_s_measured": None})
        else:
            r = json.loads((build / "rtlsim.json").read_text())
            row.update({"measured_by": f"whole-dataflow rtlsim, {r['images']} {dataset} images",
                        "mismatches": r["mismatches"], "cycles_per_image_measured": r["cycles_per_image"],
                        "images_per_s_measured": r["images_per_s"]})
        row["finn_stock"] = _finn_stock(build, res["part"], int(res["cycles_per_image"]), clock)
        row["wall_s"] = round(time.time() - t0, 1)
        rows.append(row)
    report = {"part": "xc7z020clg400-1 (pynq-z2)", "clock_mhz": 100.0, "rows": rows,
              "note": "LUT/BRAM are estimates (BitSerialMVAU: fitted to Yosys synth_xilinx; FINN layers: FINN's)"}
    report["provenance"] = provenance()  # machine, CPU, commit, date of these figures
    (out / "dataflow.json").write_text(json.dumps(report, indent=2) + "\n")
    md = table(report)
    (out / "dataflow.md").write_text(md)
    print(md)
    return 0


def table(report: dict) -> str:
    rows = ["| model | images/s measured | images/s estimated | LUT | BRAM36 | DSP | fits xc7z020 | measured by | "
            "FINN stock images/s (est.) | FINN LUT | FINN BRAM36 | FINN DSP | FINN fits |",
            "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        f = r["finn_stock"]
        meas = "—" if r["images_per_s_measured"] is None else f"{r['images_per_s_measured']:.0f}"
        rows.append(f"| {r['model']} | {meas} | {r['images_per_s_estimated']:.0f} | {r['LUT']} | "
                    f"{r['BRAM36']} | {r.get('DSP', '—')} | {r['fits']} | {r['measured_by']} | "
                    f"{f['images_per_s_estimated']:.0f} | {f['LUT']} | {f['BRAM36']} | {f.get('DSP', '—')} | {f['fits']} |")
    return "\n".join(rows) + f"\n\n{report['note']}; clock {report['clock_mhz']:g} MHz.\n"
