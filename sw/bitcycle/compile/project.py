"""``build/<model>/``: everything the compile flow produces, written to a temporary directory and
renamed into place at the end, so a failed run never leaves a directory that looks complete.

Layout::

    qonnx.onnx            Brevitas export after qonnx cleanup
    compile_config.json   the CompileConfig of the run (`bitcycle compile --config` runs it again)
    intermediate_models/  <step>.onnx after every step (the checked ones are bit-exact vs torch);
                          `--start-step S` starts from the file of the step before S
    model.onnx            folded, specialised FINN graph (input of the vendor flow)
    codegen/              FINN-generated HLS C++ / RTL per layer (BitSerialMVAU: Verilog wrapper top +
                          weight/threshold images; bitcycle_rtl/: hw/rtl's bitcycle_mvau, one copy)
    rtl/                  BitCycle's RTL (hw/rtl) for the training engine
    weights/              per engine layer: ±1 weights and thresholds (.npy)
    bd/bd.tcl             Vivado block design: PS + AXI DMA + AXI-Lite + bitcycle_top (through
                          bd/bitcycle_overlay.v, its Verilog wrapper for the module reference)
    finn_build.py         FINN builder run: Vitis HLS / Vivado → .bit + .hwh
    driver.json           schema bitcycle.driver/1 (MLPs; the driver's format has no conv layers)
    dataflow.json         layers, shapes, folding, bits ranges, stream widths, files
    resources.json / .md  FINN estimates per layer and total vs the device
    compile.json          stage checks (images compared, mismatches), the steps run, timings

A run with ``stop_step`` before the last step writes only qonnx.onnx, compile_config.json,
intermediate_models/ and compile.json (there is no folded graph to generate the project from).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from bitcycle.errors import BitCycleError

BD_PS = {
    "zynq7": {"PS_IP": "processing_system7", "PS_RULE": "processing_system7",
              "PS_MASTER": "M_AXI_GP0", "PS_HP": "S_AXI_HP0", "PS_CLK": "FCLK_CLK0",
              "PS_CONFIG": "set_property -dict [list CONFIG.PCW_USE_S_AXI_HP0 {1} "
                           "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {@CLK_MHZ@}] $ps"},
    "zynqmp": {"PS_IP": "zynq_ultra_ps_e", "PS_RULE": "zynq_ultra_ps_e",
               "PS_MASTER": "M_AXI_HPM0_FPD", "PS_HP": "S_AXI_HP0_FPD", "PS_CLK": "pl_clk0",
               # HPM1_FPD is on by default and nothing here uses it: off, or validate_bd_design stops
               # on its unconnected clock (maxihpm1_fpd_aclk)
               "PS_CONFIG": "set_property -dict [list CONFIG.PSU__USE__S_AXI_GP2 {1} CONFIG.PSU__USE__M_AXI_GP1 {0} "
                            "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {@CLK_MHZ@}] $ps"},
}
BOARD_NAMES = {"xc7z020": "Pynq-Z2", "xczu3eg": "Ultra96", "xczu7ev": "ZCU104"}
# Vivado board files (the ones FINN's Zynq templates name for these boards)
BOARD_PARTS = {"xc7z020": "tul.com.tw:pynq-z2:part0:1.0", "xczu3eg": "avnet.com:ultra96v2:part0:1.2",
               "xczu7ev": "xilinx.com:zcu104:part0:1.1"}


def repo_dir() -> Path:
    from bitcycle.compile.mvau_rtl import rtl_dir

    return rtl_dir().parents[1]


def _fill(template: str, values: dict) -> str:
    for k, v in values.items():
        template = template.replace(f"@{k}@", str(v))
    return template


OVERLAY_STREAM_BYTES = 8  # the block design's AXI DMA moves 64-bit words


def overlay_engine(clock_mhz: float, rtl_top=None):
    """The training overlay's engine section: driver.json's numbers plus every ``bitcycle_top``
    parameter (``rtl_parameters``) derived from them — the one dict bd.tcl and the sim backend build from."""
    from bitcycle.hwif.driver_json import EngineSpec
    from bitcycle.hwif.top_params import rtl_parameters

    engine = EngineSpec(stream_bytes=OVERLAY_STREAM_BYTES, clock_hz=int(round(clock_mhz * 1e6)))
    engine.rtl_parameters = rtl_parameters(engine, rtl_top)
    return engine


def block_design_tcl(part: str, clock_mhz: float, engine) -> str:
    """bd.tcl for ``engine`` (an EngineSpec with rtl_parameters): every bitcycle_top parameter set explicitly."""
    family = "zynq7" if part.lower().startswith("xc7z") else "zynqmp"
    ps = dict(BD_PS[family])
    board = next((b for p, b in BOARD_NAMES.items() if part.lower().startswith(p)), part)
    board_part = next((b for p, b in BOARD_PARTS.items() if part.lower().startswith(p)), None)
    if board_part is None:
        raise BitCycleError(f"no Vivado board file known for part {part}: the block design needs one for the PS preset "
                            f"(known: {', '.join(BOARD_PARTS)})")
    params = engine.rtl_parameters
    if not params:
        raise BitCycleError("block_design_tcl needs engine.rtl_parameters (use overlay_engine()): "
                            "bd.tcl must set every bitcycle_top parameter")
    eng = "set_property -dict [list " + " ".join(f"CONFIG.{k} {{{v}}}" for k, v in params.items()) + "] $eng"
    text = (repo_dir() / "hw" / "vivado" / "zynq_bd.tcl.in").read_text()
    text = _fill(text, {**ps, "PART": part, "BOARD": board, "BOARD_PART": board_part, "DMA_WIDTH": 8 * engine.stream_bytes,
                        "ENGINE_PARAMS": eng})
    return _fill(text, {"CLK_MHZ": f"{clock_mhz:g}"})


def write_block_design(bd_dir: Path, part: str, clock_mhz: float, engine, rtl_top: Path) -> Path:
    """bd/bd.tcl and the Verilog wrapper it references (bd/bitcycle_overlay.v, from ``rtl_top``)."""
    from bitcycle.compile.overlay_wrapper import wrapper_verilog

    bd_dir.mkdir(parents=True, exist_ok=True)
    (bd_dir / "bitcycle_overlay.v").write_text(wrapper_verilog(rtl_top, engine.rtl_parameters))
    (bd_dir / "bd.tcl").write_text(block_design_tcl(part, clock_mhz, engine))
    return bd_dir / "bd.tcl"


def finn_build_script(model_name: str, part: str, clock_mhz: float) -> str:
    board = next((b for p, b in BOARD_NAMES.items() if part.lower().startswith(p)), part)
    text = (repo_dir() / "hw" / "vivado" / "finn_build.py.in").read_text()
    return _fill(text, {"MODEL": model_name, "PART": part, "BOARD": board, "CLK_NS": f"{1000.0 / clock_mhz:g}"})


def _codegen(model, part: str, clock_mhz: float, codegen_dir: Path):
    """FINN's PrepareIP: HLS C++ for FINN's HLS layers, RTL for RTL layers (ours included)."""
    codegen_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FINN_BUILD_DIR"] = str(codegen_dir)
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP

    return model.transform(PrepareIP(part, 1000.0 / clock_mhz))


def _relocate(model, old: Path, new: Path):
    """Code-generation paths point into the temporary directory; make them point at the final one."""
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == attr.STRING and attr.s.startswith(str(old).encode()):
                attr.s = attr.s.replace(str(old).encode(), str(new).encode(), 1)


def _relocate_files(root: Path, old: Path, new: Path):
    """Generated HDL names its memory images by absolute path (FINN's too): point them at ``new``."""
    for f in root.rglob("*"):
        if f.suffix in (".sv", ".v", ".vh", ".tcl", ".cpp", ".h", ".sh") and f.is_file():
            text = f.read_text(errors="ignore")
            if str(old) in text:
                f.write_text(text.replace(str(old), str(new)))


def _engine_layers(model):
    from qonnx.custom_op.registry import getCustomOp

    return [(n, getCustomOp(n)) for n in model.graph.node if n.op_type.startswith("BitSerialMVAU")]


def _write_weights(model, wdir: Path) -> list[dict]:
    """weights/<layer>.weights.npy (±1, [MH, MW]) and .thresholds.npy; ``weights_mem`` names the
    images the generated RTL reads (codegen/…/<top>_weights.mem, and _weights_lut.mem for lanes in
    LUT logic), relative to the project."""
    wdir.mkdir(parents=True, exist_ok=True)
    files = []
    for node, inst in _engine_layers(model):
        w = model.get_initializer(node.input[1])  # [MW, MH] ±1
        entry = {"layer": node.name, "weights": f"weights/{node.name}.weights.npy"}
        mems = [m for m in inst.mem_files() if "_weights" in m.name] if inst.get_nodeattr("code_gen_dir_ipgen") else []
        if mems and all(m.is_file() for m in mems):  # block-RAM lanes' image, then the LUT lanes'
            entry["weights_mem"] = [str(m.resolve().relative_to(wdir.parent.resolve())) for m in mems]
        np.save(wdir / f"{node.name}.weights.npy", np.asarray(w.T, dtype=np.int8))  # [MH, MW]
        if len(node.input) > 2:
            thr = model.get_initializer(node.input[2])
            np.save(wdir / f"{node.name}.thresholds.npy", np.asarray(thr, dtype=np.int64))
            entry["thresholds"] = f"weights/{node.name}.thresholds.npy"
        files.append(entry)
    return files


def dataflow_description(model, exported, files: list[dict]) -> dict:
    from qonnx.custom_op.registry import getCustomOp

    layers = []
    for node in model.graph.node:
        entry = {"name": node.name, "op_type": node.op_type,
                 "in_shape": list(model.get_tensor_shape(node.input[0]) or []),
                 "out_shape": list(model.get_tensor_shape(node.output[0]) or []),
                 "host": not node.domain.startswith("finn.custom_op.fpgadataflow")}
        if not entry["host"]:
            inst = getCustomOp(node)
            for k in ("PE", "SIMD", "MW", "MH", "bits", "bits_min", "bits_max", "acc_bits", "noActivation",
                      "inputDataType", "outputDataType", "weightDataType"):
                try:
                    entry[k] = inst.get_nodeattr(k)
                except Exception:  # not an attribute of this op
                    pass
            entry["instream_width"] = int(inst.get_instream_width())
            entry["outstream_width"] = int(inst.get_outstream_width())
            entry["folded_in_shape"] = [int(d) for d in inst.get_folded_input_shape()]
            entry["folded_out_shape"] = [int(d) for d in inst.get_folded_output_shape()]
            entry["cycles"] = int(inst.get_exp_cycles())
        entry.update(next((f for f in files if f["layer"] == node.name), {}))
        entry.pop("layer", None)
        layers.append(entry)
    return {"model": exported.name, "input_shape": list(exported.input_shape), "pixel_max": exported.pixel_max,
            "input_datatype": str(model.get_tensor_datatype(model.graph.input[0].name).name),
            "head": {"scale": exported.head_scale, "bias": exported.head_bias,
                     "note": "logits = scale · integer_output + bias (host side)"},
            "layers": layers}


def driver_spec(model, exported, torch_model, grad_bits=(2, 8), engine=None):
    """driver.json (schema bitcycle.driver/1) for an MLP, for the overlay ``engine`` (overlay_engine());
    None + reason for other models."""
    from bitcycle.hwif import convshapes
    from bitcycle.hwif.driver_json import DriverSpec, InputSpec, LayerSpec, validate

    eng = _engine_layers(model)
    if not eng:
        return None, "no layer mapped onto the engine"
    if any(n.op_type.startswith("ConvolutionInputGenerator") for n in model.graph.node):
        if torch_model is None:
            return None, ("driver.json's conv layers are read off the zoo's torch model; a CNN compiled from --onnx "
                          "gets dataflow.json only")
        from bitcycle.compile.driver_layers import check_against_graph, torch_layer_specs

        try:
            layers = torch_layer_specs(torch_model, exported.input_shape[1:])
        except BitCycleError as err:
            return None, f"driver.json not written: {err}"
        differs = check_against_graph(layers, eng)
        if differs is not None:
            return None, f"driver.json not written: {differs}"
    else:
        layers = []
        for i, (_node, inst) in enumerate(eng):
            last = i == len(eng) - 1
            layers.append(LayerSpec(name=f"fc{i}", in_features=inst.get_nodeattr("MW"),
                                    out_features=inst.get_nodeattr("MH"), in_bits=inst.get_nodeattr("bits"),
                                    norm="none" if last else "batchnorm", act="none" if last else "sign"))
    in_bits = layers[0].in_bits
    # the zoo's input quantiser: x = 2·p/pixel_max − 1 in Q1.(b−1) ⇒ x_int = p·2^b/pixel_max − 2^(b−1)
    spec = DriverSpec(model=exported.name, classes=layers[-1].out_features,
                      input=InputSpec(features=convshapes.input_features(layers[0]), bits=in_bits,
                                      scale=float(2 ** in_bits / exported.pixel_max), offset=float(-(2 ** (in_bits - 1)))),
                      layers=layers, grad_bits={"min": int(grad_bits[0]), "max": int(grad_bits[1])},
                      params="params.npz" if torch_model is not None else None)
    if engine is not None:
        spec.engine = engine
    try:
        validate(spec)
    except BitCycleError as err:
        return None, f"driver.json not written: {err}"
    return spec, None


def rtlsim_check_dir(out_dir: Path) -> Path:
    """Where the rtlsim check generates and builds each engine layer: beside the build directory, not
    in it (it survives a failed compile, whose log it names, and its Verilator builds are reused)."""
    return (Path(out_dir).parent / f".{Path(out_dir).name}.rtlsim-check").resolve()


def build_project(exported, pixels: np.ndarray, out_dir: str | Path, cfg, torch_model=None,
                  progress: bool = True) -> dict:
    """Export, run cfg's steps (CompileConfig), check, generate; returns the summary (also in compile.json).
    With cfg.start_step the run resumes from ``out_dir/intermediate_models`` and keeps the files of the
    steps before it."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.flow import run_steps

    out_dir = Path(out_dir)
    cfg.validate()
    cfg.pixel_max = float(exported.pixel_max)
    tmp = (out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}").resolve()
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    inter = tmp / "intermediate_models"
    t0 = time.time()
    try:
        if cfg.start_step is not None and (out_dir / "intermediate_models").is_dir():
            shutil.copytree(out_dir / "intermediate_models", inter)  # the steps before start_step stay
        cfg.save(tmp / "compile_config.json")
        expected = exported.integer_outputs(pixels) if len(pixels) else np.zeros((0,))
        qonnx_path = exported.save_qonnx(tmp / "qonnx.onnx")  # a Brevitas export, or the prepared --onnx graph
        t_export = time.time() - t0
        result = run_steps(ModelWrapper(str(qonnx_path)), cfg, pixels, expected, progress=progress, save_dir=inter,
                           resume_dir=out_dir / "intermediate_models",
                           rtlsim_dir=rtlsim_check_dir(out_dir))
        t_flow = time.time() - t0 - t_export
        summary = {"model": exported.name, "part": cfg.part, "fold": cfg.fold_kwargs(),
                   "input_quant": cfg.input_quant, "steps_run": result.steps_run, "stages": result.stages,
                   "images_checked": int(len(pixels)), "bit_exact": True}
        if result.steps_run[-1] == cfg.steps[-1]:
            summary.update(_generate(result, exported, cfg, torch_model, tmp, out_dir))
        summary.update({"wall_s": {"export": round(t_export, 2), "flow": round(t_flow, 2),
                                   "total": round(time.time() - t0, 2)},
                        "cpu_s": round(time.process_time(), 2)})
        (tmp / "compile.json").write_text(json.dumps(summary, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return summary


def _generate(result, exported, cfg, torch_model, tmp: Path, out_dir: Path) -> dict:
    """Everything after the flow: codegen, RTL, weights, bd.tcl, finn_build.py, driver.json, reports."""
    from bitcycle.compile.folding import resolve_part, resource_table

    part, clock = resolve_part(cfg.part), float(cfg.clock_mhz)
    model = _codegen(result.model, part, clock, tmp / "codegen")
    shutil.copytree(repo_dir() / "hw" / "rtl", tmp / "rtl")
    files = _write_weights(model, tmp / "weights")
    # one engine section for bd.tcl and driver.json (engine.rtl_parameters): they cannot drift
    engine = overlay_engine(clock, tmp / "rtl" / "bitcycle_top.sv")
    write_block_design(tmp / "bd", part, clock, engine, tmp / "rtl" / "bitcycle_top.sv")
    (tmp / "finn_build.py").write_text(finn_build_script(exported.name, part, clock))
    flow_desc = dataflow_description(model, exported, files)
    spec, why_not = driver_spec(model, exported, torch_model, cfg.grad_bits_range(), engine)
    if spec is not None and hasattr(exported, "driver_input"):  # --onnx: the graph's own input quantiser
        io, why_not = exported.driver_input(spec.input.bits)
        if io is None:
            spec, why_not = None, f"driver.json not written: {why_not}"
        else:
            spec.input.scale, spec.input.offset = io
    if spec is not None:
        if torch_model is not None:
            from bitcycle.compile.driver_layers import write_params

            write_params(torch_model, spec.layers, tmp / "params.npz")
        spec.save(tmp / "driver.json")
    flow_desc["input_quant"] = cfg.input_quant
    flow_desc["driver_json"] = "driver.json" if spec is not None else None
    flow_desc["driver_json_note"] = why_not
    (tmp / "dataflow.json").write_text(json.dumps(flow_desc, indent=2) + "\n")
    (tmp / "resources.json").write_text(json.dumps(result.resources, indent=2) + "\n")
    (tmp / "resources.md").write_text(resource_table(result.resources))
    _relocate(model, tmp, out_dir.resolve())
    _relocate_files(tmp / "codegen", tmp, out_dir.resolve())
    model.save(str(tmp / "model.onnx"))
    return {"resources": {k: result.resources[k] for k in ("total", "capacity", "fits", "images_per_s")}}
