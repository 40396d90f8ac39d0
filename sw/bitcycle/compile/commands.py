"""``bitcycle export`` and ``bitcycle compile`` (the CLI table points both here: ``run`` dispatches
on which one was called through ``args.command_name``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bitcycle.cliutil import add_model_set, add_quiet
from bitcycle.errors import BitCycleError

from bitcycle.data import PIXEL_MAX as DATASET_PIXEL_MAX


def load_model(args):
    """(torch model, name) from --checkpoint (a `bitcycle train` run dir or file) or --model NAME, or from
    --driver-json; with --params the weights come from a params.npz (board-trained)."""
    if getattr(args, "driver_json", None) or getattr(args, "params", None):
        from bitcycle.compile.params_in import load_with_params

        return load_with_params(args)
    return load_source_model(args)


def load_source_model(args):
    """(torch model, name) from --checkpoint or --model, with the weights they hold."""
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if args.checkpoint:
        path = Path(args.checkpoint)
        if path.is_dir() or path.name == "model.pt":
            from bitcycle.train.checkpoint import load_trained

            model = load_trained(path)
        else:
            from bitcycle.compile.export import load_checkpoint

            model = load_checkpoint(path)
        return model, getattr(model, "zoo_name", path.stem)
    from bitcycle.nets import get_model, load_model_config

    name, cfg = args.model, {}
    if name.endswith(".toml"):
        name, cfg = load_model_config(name)
    cfg.update(model_options(args))
    model = get_model(name, **cfg).eval()
    return model, name


def model_options(args) -> dict:
    """get_model options of the command line: compile's resolved ``model_cfg`` (its --config file's
    options with --set on top), else export's --set pairs."""
    from bitcycle.compile.config import CompileConfig

    if getattr(args, "model_cfg", None):
        return CompileConfig(model_cfg=args.model_cfg).model_options()
    return dict(getattr(args, "model_set", None) or [])


def test_pixels(dataset: str | None, shape, pixel_max: float, n: int, data_dir=None) -> np.ndarray:
    """n test images as raw pixel codes 0..pixel_max (what the accelerator's input sees)."""
    if n <= 0:
        return np.zeros((0, *shape[1:]), dtype=np.float32)
    if dataset in (None, "random"):
        rng = np.random.default_rng(0)
        return rng.integers(0, int(pixel_max) + 1, size=(n, *shape[1:])).astype(np.float32)
    from bitcycle.data import load

    x = load(dataset, data_dir).test_x[:n].astype(np.float64) * pixel_max
    codes = np.round(x)
    if np.max(np.abs(codes - x)) > 1e-3:
        raise BitCycleError(f"data set {dataset}: images are not pixel codes / {pixel_max:g}; cannot feed integers")
    if int(np.prod(codes.shape[1:])) != int(np.prod(shape[1:])):
        raise BitCycleError(f"data set {dataset} has images of shape {list(codes.shape[1:])} but the model takes "
                            f"{list(shape[1:])}; pick the data set the model was trained on")
    return codes.reshape(len(codes), *shape[1:]).astype(np.float32)


def default_out(args) -> Path:
    """build/<run directory name> for a checkpoint, build/<file stem> for an ONNX file, build/<model name>
    for a zoo model."""
    if args.out:
        return Path(args.out)
    if getattr(args, "onnx", None):
        return Path("build") / Path(args.onnx).stem
    if getattr(args, "driver_json", None):
        p = Path(args.driver_json)
        return Path("build") / ((p if p.is_dir() else p.parent).resolve().name + "-compiled")
    if args.checkpoint:
        p = Path(args.checkpoint)
        return Path("build") / (p.parent.name if p.is_file() or p.suffix == ".pt" else p.name)
    return Path("build") / Path(args.model).stem


def make_hint(args) -> str:
    if getattr(args, "driver_json", None) or getattr(args, "params", None):
        src = (f"--driver-json {args.driver_json}" if args.driver_json else
               f"--checkpoint {args.checkpoint}" if args.checkpoint else f"--model {args.model}")
        return f"bitcycle bitstream {src}" + (f" --params {args.params}" if args.params else "") + \
            (f" --out {args.out}" if args.out else "")
    src = args.checkpoint or getattr(args, "onnx", None) or args.model
    return f"make bitstream MODEL={src}" + (f" COMPILE_ARGS='--out {args.out}'" if args.out else "")


def _common(parser: argparse.ArgumentParser, source_required: bool = True) -> None:
    src = parser.add_mutually_exclusive_group(required=source_required)
    src.add_argument("--checkpoint", help="trained run directory (or its model.pt / checkpoint.pt) from `bitcycle train`")
    src.add_argument("--model", help="zoo name (tfc, sfc, lfc, cnv) or models/NAME.toml, with untrained weights")
    src.add_argument("--driver-json", help="driver.json of a model trained through the driver (`bitcycle run`): its "
                                           "layers, with the weights of --params (default: the params it names)")
    src.add_argument("--onnx", help="QONNX file from brevitas.export.export_qonnx of a W1A1 model (e.g. brevitas_examples."
                                    "bnn_pynq TFC/SFC/LFC/CNV); its weights are compiled as they are")
    parser.add_argument("--params", default=None,
                        help="params.npz (or its directory) from `bitcycle run` on the board: replaces the weights of "
                             "--driver-json / --checkpoint / --model, so board-trained weights are compiled")
    parser.add_argument("--input-scale", type=float, default=None,
                        help="--onnx: graph input = SCALE · pixel code + OFFSET (default: read from the graph's input "
                             "quantiser, e.g. 1/255 for FINN's models on 8-bit images)")
    parser.add_argument("--input-offset", type=float, default=None, help="--onnx: see --input-scale (default from the graph)")
    add_model_set(parser, json_alias="--model-cfg")
    parser.add_argument("--dataset", default=None, choices=["digits", "fashion-mnist", "cifar10", "random"],
                        help="images for the bit-exactness checks (default: from the model's input shape)")
    parser.add_argument("--data-dir", default=None, help="data set directory (Fashion-MNIST / CIFAR-10)")
    parser.add_argument("--out", default=None, help="output directory (default build/<model>)")


def _infer_dataset(model, dataset):
    if dataset:
        return dataset
    feats = getattr(model, "in_features", None)
    if feats == 64:
        return "digits"
    if feats == 784 or getattr(model, "input_size", None) == 28:
        return "fashion-mnist"
    return "random"


def _dataset_for_shape(shape, dataset):
    if dataset:
        return dataset
    feats = int(np.prod(shape[1:]))
    return {64: "digits", 784: "fashion-mnist"}.get(feats, "random")


def _prepare_onnx(args):
    from bitcycle.compile.onnx_in import load_qonnx, prepare_onnx

    probe = load_qonnx(args.onnx)
    shape = probe.get_tensor_shape(probe.graph.input[0].name)
    dataset = _dataset_for_shape(shape, args.dataset)
    pixel_max = DATASET_PIXEL_MAX.get(dataset, 255.0)
    exported = prepare_onnx(args.onnx, pixel_max, args.input_scale, args.input_offset)
    return None, exported.name, dataset, exported


def _prepare(args):
    from bitcycle.compile.export import input_spec_for, prepare

    if getattr(args, "onnx", None):
        if args.params:
            raise BitCycleError("--params replaces the weights of --driver-json, --checkpoint or --model; an --onnx "
                                "graph brings its own weights")
        return _prepare_onnx(args)
    if args.input_scale is not None or args.input_offset is not None:
        raise BitCycleError("--input-scale/--input-offset apply to --onnx graphs only; a checkpoint or zoo model "
                            "takes pixel codes 0..pixel_max of its data set")
    model, name = load_model(args)
    dataset = _infer_dataset(model, args.dataset)
    shape, pixel_max = input_spec_for(model)
    pixel_max = DATASET_PIXEL_MAX.get(dataset, pixel_max)
    return model, name, dataset, prepare(model, shape, pixel_max=pixel_max, name=name)


# -------------------------------------------------------------------------------------- export
def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)


def run_export(args) -> int:
    _, name, _, exported = _prepare(args)
    out = default_out(args)
    path = exported.save_qonnx(out / "qonnx.onnx")
    print(f"QONNX: {path}  (integer input 0..{exported.pixel_max:g}, integer logits; "
          f"head scale {exported.head_scale:.6g}, bias {exported.head_bias:.6g})")
    return 0


# ------------------------------------------------------------------------------------- compile
def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    # flags default to None so that over --config FILE only the flags given replace its fields
    # (the defaults are CompileConfig's, bitcycle/compile/config.py)
    _common(parser, source_required=False)
    parser.add_argument("--config", default=None,
                        help="compile_config.json of an earlier compile (or its build directory): run it again; "
                             "flags given beside it override its fields")
    parser.add_argument("--part", default=None,
                        help="FPGA part or board: pynq-z2 (xc7z020clg400-1, default), ultra96, zcu104, or a part name")
    fold = parser.add_mutually_exclusive_group()
    fold.add_argument("--target-fps", type=float, default=None, help="images/s the dataflow must sustain")
    fold.add_argument("--lut-budget", type=int, default=None, help="LUTs the dataflow may use (fastest folding that fits)")
    parser.add_argument("--clock-mhz", type=float, default=None, help="clock for the folding target (default 100)")
    parser.add_argument("--check-images", type=int, default=None,
                        help="test images every intermediate graph is checked on, bit-exact (default 100; 0 = skip)")
    parser.add_argument("--rtlsim-check", type=int, default=None, metavar="N",
                        help="check the engine stage again on the first N check images with exec_mode rtlsim: each "
                             "layer's generated RTL in Verilator instead of the golden model (default 0 = off)")
    parser.add_argument("--bits-max", type=int, default=None,
                        help="run-time bit-width range of the engine: 1..BITS_MAX (default 16)")
    parser.add_argument("--input-quant", default=None, choices=["host", "fabric"],
                        help="8-bit input quantiser on the host (default: driver.json input.scale/offset) or as a "
                             "FINN Thresholding layer in the fabric")
    parser.add_argument("--grad-bits", default=None, metavar="SPEC",
                        help="the gradient schedule the driver will run, as in train/run (e.g. cosine:2-8x4); "
                             "driver.json's gradient bit range follows it")
    parser.add_argument("--grad-range", default=None, metavar="LO-HI",
                        help="driver.json's gradient bit range directly (default: --grad-bits' range, else 2-8)")
    parser.add_argument("--start-step", default=None,
                        help="first step to run (e.g. step_fold), from OUT/intermediate_models/<previous step>.onnx "
                             "of an earlier run; steps: see docs/compile.md or an unknown name's error")
    parser.add_argument("--stop-step", default=None, help="last step to run (inclusive); the project files are "
                                                         "generated only when the last step runs")
    add_quiet(parser)


def resolve_compile_args(args):
    """The run's CompileConfig (--config FILE + the flags given); written back onto ``args``, whose
    source/data flags the loaders read, with ``out`` resolved (default build/<model>)."""
    from dataclasses import fields

    from bitcycle.compile.config import CompileConfig, config_from_args

    cfg = config_from_args(args)
    for f in fields(CompileConfig):
        setattr(args, f.name, getattr(cfg, f.name))
    cfg.out = args.out = str(default_out(args))
    return cfg


def run_compile(args) -> int:
    from bitcycle.compile.folding import resolve_part
    from bitcycle.compile.project import build_project

    cfg = resolve_compile_args(args)
    model, name, dataset, exported = _prepare(args)
    pixels = test_pixels(dataset, exported.input_shape, exported.pixel_max, cfg.check_images, cfg.data_dir)
    out = Path(cfg.out)
    summary = build_project(exported, pixels, out, cfg, torch_model=model, progress=not getattr(args, "quiet", False))
    checked = [k for k, v in summary["stages"].items() if v["checked"]]
    ran = summary["steps_run"]
    print(f"compiled {name} for {resolve_part(cfg.part)} into {out}/ (steps {ran[0]} … {ran[-1]}; config: {out}/compile_config.json)")
    ref = "the QONNX graph (execute_onnx)" if getattr(args, "onnx", None) else "torch"
    print(f"  bit-exact vs {ref} on {summary['images_checked']} {dataset} images at stages: {', '.join(checked) or 'none'}")
    for stage, info in summary["stages"].items():
        if info.get("rtlsim_checked"):
            print(f"  stage {stage} also bit-exact with exec_mode rtlsim (generated RTL in Verilator) on "
                  f"{info['rtlsim_checked']} images")
    if "resources" not in summary:
        print(f"  stopped after {ran[-1]}: graphs in {out}/intermediate_models/; resume with "
              f"--start-step {cfg.steps[cfg.steps.index(ran[-1]) + 1]}")
        return 0
    res = summary["resources"]
    print(f"  {res['total']['LUT']} / {res['capacity']['LUT']} LUT, {res['total']['BRAM36']} / {res['capacity']['BRAM36']} "
          f"BRAM36, fits: {res['fits']}, {res['images_per_s']:.0f} images/s at {cfg.clock_mhz:g} MHz")
    print(f"  next: {make_hint(args)}  (runs {out}/finn_build.py and {out}/bd/bd.tcl with Vitis/Vivado)")
    return 0


# the CLI calls add_arguments/run of the module; the two commands share this module through
# thin wrappers (bitcycle.compile.export_cmd / compile_cmd)
