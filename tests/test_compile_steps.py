"""The compile flow in FINN's shape: named steps, CompileConfig (JSON round trip, re-run), start/stop
steps resuming from intermediate_models/, one-line errors for bad step names and a missing start
model, and passes that report ``changed`` honestly (True when the graph changed, False on a no-op)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bitcycle.errors import BitCycleError
from cli_run import one_line_exit_2, run_cli

torch.set_num_threads(1)
PART = "xc7z020clg400-1"
EXPECTED_STEPS = ("step_tidy_qonnx", "step_to_finn", "step_streamline", "step_to_xnor", "step_to_hw_layers",
                  "step_map_to_engine", "step_specialize", "step_fold")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small zoo MLP through every step, each step's graph saved; (exported, pixels, expected, cfg, dir, result)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.config import CompileConfig
    from bitcycle.compile.export import export_qonnx, prepare
    from bitcycle.compile.flow import run_steps
    from bitcycle.nets import get_model

    torch.manual_seed(0)
    model = get_model("tfc", in_features=64, width=16, depth=1).eval()
    gen = torch.Generator().manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):  # thresholds that matter
        bn.running_mean.copy_((torch.rand(bn.num_features, generator=gen) - 0.5) * 10)
    exported = prepare(model, (1, 1, 8, 8), pixel_max=16)
    pixels = np.random.default_rng(0).integers(0, 17, size=(12, 1, 8, 8)).astype(np.float32)
    expected = exported.integer_outputs(pixels)
    work = tmp_path_factory.mktemp("steps")
    qonnx = ModelWrapper(str(export_qonnx(exported, work / "m.onnx")))
    cfg = CompileConfig(part=PART, pixel_max=16, target_fps=200_000)  # folds above PE = SIMD = 1
    result = run_steps(qonnx, cfg, pixels, expected, progress=False, save_dir=work / "intermediate_models")
    return qonnx, pixels, expected, cfg, work / "intermediate_models", result


def _load(directory: Path, step: str):
    from qonnx.core.modelwrapper import ModelWrapper

    import bitcycle.compile.customop  # noqa: F401  (BitSerialMVAU nodes)

    return ModelWrapper(str(directory / f"{step}.onnx"))


# -- the step list ---------------------------------------------------------------------------------
def test_steps_are_named_in_order_with_their_stages_and_checks():
    from bitcycle.compile.config import CompileConfig
    from bitcycle.compile.steps import STEP_NAMES, STEPS

    assert STEP_NAMES == EXPECTED_STEPS
    assert CompileConfig().steps == list(EXPECTED_STEPS)
    assert [STEPS[n].stage for n in STEP_NAMES] == ["qonnx", "finn", "streamlined", "xnor", "hw", "engine",
                                                     "specialized", "folded"]
    assert [n for n in STEP_NAMES if STEPS[n].check] == list(EXPECTED_STEPS[:6])
    assert all(STEPS[n].fn.__doc__ for n in STEP_NAMES)


def test_full_run_checks_every_executable_step_and_saves_each_graph(tiny):
    _, pixels, _, _, inter, result = tiny
    assert result.steps_run == list(EXPECTED_STEPS)
    assert {k: v["checked"] for k, v in result.stages.items()} == {
        "qonnx": 12, "finn": 12, "streamlined": 12, "xnor": 12, "hw": 12, "engine": 12, "specialized": 0, "folded": 0}
    assert sorted(p.stem for p in inter.glob("*.onnx")) == sorted(EXPECTED_STEPS)
    assert result.stages["folded"]["nodes"].count("BitSerialMVAU_rtl") == 2
    assert result.resources is not None and result.resources["fits"] is True


# -- CompileConfig ---------------------------------------------------------------------------------
def test_config_round_trips_through_json(tmp_path):
    from bitcycle.compile.config import CompileConfig

    cfg = CompileConfig(model="tfc", model_cfg='{"width": 16}', part="ultra96", lut_budget=12345, bits_max=8,
                        input_quant="fabric", check_images=7, stop_step="step_to_xnor", pixel_max=255.0)
    path = cfg.save(tmp_path / "compile_config.json")
    data = json.loads(path.read_text())
    assert data["schema"] == "bitcycle.compile_config/1" and data["steps"] == list(EXPECTED_STEPS)
    back = CompileConfig.load(tmp_path)  # a build directory names its compile_config.json
    assert back == cfg
    assert back.fold_kwargs() == {"clock_mhz": 100.0, "lut_budget": 12345}
    assert CompileConfig(target_fps=5.0).fold_kwargs() == {"clock_mhz": 100.0, "target_fps": 5.0}
    assert CompileConfig().fold_kwargs() == {"clock_mhz": 100.0, "lut_budget": int(0.8 * 53_200)}  # 80 % of xc7z020


@pytest.mark.parametrize("edit, needle", [
    ({"stepz": []}, "unknown field(s) stepz"),
    ({"schema": "other/9"}, "schema 'other/9'"),
    ({"steps": ["step_tidy_qonnx", "step_bogus"]}, "unknown compile step 'step_bogus'; valid steps: step_tidy_qonnx, "),
    ({"input_quant": "board"}, "input_quant must be 'host' or 'fabric'"),
    ({"part": "xc9nothing"}, "unknown FPGA part"),
    ({"start_step": "step_fold", "stop_step": "step_to_finn"}, "comes after --stop-step step_to_finn"),
])
def test_bad_config_is_one_line(tmp_path, edit, needle):
    from bitcycle.compile.config import CompileConfig

    data = {**CompileConfig(model="tfc").to_dict(), **edit}
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(BitCycleError) as err:
        CompileConfig.load(tmp_path / "c.json")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_step_names_list_the_valid_ones():
    from bitcycle.compile.steps import check_step_names

    valid = ", ".join(EXPECTED_STEPS)
    with pytest.raises(BitCycleError, match=f"unknown compile step 'fold'; valid steps: {valid}$"):
        check_step_names(["fold"])
    with pytest.raises(BitCycleError, match=f"--start-step 'step_foldd' is not a step of this flow; valid steps: {valid}$"):
        check_step_names(list(EXPECTED_STEPS), start="step_foldd")
    with pytest.raises(BitCycleError, match="--stop-step 'step_fold' is not a step of this flow; valid steps: "
                                            "step_tidy_qonnx, step_to_finn$"):
        check_step_names(["step_tidy_qonnx", "step_to_finn"], stop="step_fold")
    check_step_names(list(EXPECTED_STEPS), start="step_to_xnor", stop="step_to_xnor")  # one step: legal


# -- start / stop ----------------------------------------------------------------------------------
def test_stop_then_resume_gives_the_full_run(tiny, tmp_path):
    from bitcycle.compile.flow import run_steps

    qonnx, pixels, expected, cfg, _, full = tiny
    first = run_steps(qonnx, _with(cfg, stop_step="step_to_xnor"), pixels, expected, progress=False, save_dir=tmp_path)
    assert first.steps_run == list(EXPECTED_STEPS[:4]) and first.resources is None
    assert sorted(p.stem for p in tmp_path.glob("*.onnx")) == sorted(EXPECTED_STEPS[:4])
    rest = run_steps(None, _with(cfg, start_step="step_to_hw_layers"), pixels, expected, progress=False,
                     save_dir=tmp_path, resume_dir=tmp_path)
    assert rest.steps_run == list(EXPECTED_STEPS[4:])
    assert rest.stages["hw"]["checked"] == 12 and rest.stages["engine"]["checked"] == 12
    assert [n.op_type for n in rest.model.graph.node] == full.stages["folded"]["nodes"]
    assert rest.resources["total"] == full.resources["total"]


def _with(cfg, **changes):
    out = copy.deepcopy(cfg)
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def test_resume_checks_the_loaded_graph(tiny, tmp_path):
    """A start step's input model is checked like any other: a corrupted one stops the run."""
    from bitcycle.compile.flow import run_steps

    qonnx, pixels, expected, cfg, inter, _ = tiny
    model = _load(inter, "step_to_xnor")
    thr = next(n for n in model.graph.node if n.op_type == "MultiThreshold" and model.get_initializer(n.input[1]) is not None)
    model.set_initializer(thr.input[1], model.get_initializer(thr.input[1]) + 3)  # the fault
    model.save(str(tmp_path / "step_to_xnor.onnx"))
    with pytest.raises(BitCycleError, match="stage hw: graph output differs from torch"):
        run_steps(None, _with(cfg, start_step="step_to_hw_layers", stop_step="step_to_hw_layers"), pixels, expected,
                  progress=False, resume_dir=tmp_path)


def test_start_step_without_its_input_model_is_one_line(tiny, tmp_path):
    from bitcycle.compile.flow import run_steps

    _, pixels, expected, cfg, _, _ = tiny
    with pytest.raises(BitCycleError) as err:
        run_steps(None, _with(cfg, start_step="step_fold"), pixels, expected, progress=False, resume_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "step_specialize.onnx") in msg and "run the flow up to step_specialize" in msg


# -- honest `changed` ------------------------------------------------------------------------------
def _make_pass(name: str, cfg):
    from bitcycle.compile import passes as P
    from bitcycle.compile.folding import FoldForTarget
    from bitcycle.compile.map_bitserial import MapToBitSerialMVAU

    return {"StreamlineBnn": P.StreamlineBnn, "ToXnorPopcount": P.ToXnorPopcount, "InferHwLayers": P.InferHwLayers,
            "MapToBitSerialMVAU": MapToBitSerialMVAU, "Specialize": lambda: P.Specialize(PART),
            "FoldForTarget": lambda: FoldForTarget(PART, **cfg.fold_kwargs())}[name]()


@pytest.mark.parametrize("step_in, name", [
    ("step_to_finn", "StreamlineBnn"), ("step_streamline", "ToXnorPopcount"), ("step_to_xnor", "InferHwLayers"),
    ("step_to_hw_layers", "MapToBitSerialMVAU"), ("step_map_to_engine", "Specialize"), ("step_specialize", "FoldForTarget"),
])
def test_a_pass_that_changes_the_graph_says_so_and_then_is_a_no_op(tiny, step_in, name):
    from bitcycle.compile.passes import graph_bytes

    cfg, inter = tiny[3], tiny[4]
    model = _load(inter, step_in)
    before = graph_bytes(model)
    model, changed = _make_pass(name, cfg).apply(model)
    assert changed is True and graph_bytes(model) != before
    if name == "MapToBitSerialMVAU":  # maps one layer per call, FINN's loop calls it again
        while changed:
            model, changed = _make_pass(name, cfg).apply(model)
    again = graph_bytes(model)
    model, changed = _make_pass(name, cfg).apply(model)
    assert changed is False and graph_bytes(model) == again


@pytest.mark.parametrize("step, names", [
    ("step_tidy_qonnx", ["CheckSupportedQONNX", "TidyUp"]),
    ("step_to_xnor", ["ToXnorPopcount", "CheckStreamlined"]),
    # not InferHwLayers: on this output it would make the host-side input quantiser a HW layer again
    ("step_to_hw_layers", ["InputQuantOnHost", "CheckHwMapped"]),
])
def test_the_passes_ending_a_step_are_no_ops_on_its_output(tiny, step, names):
    from bitcycle.compile import passes as P

    inter = tiny[4]
    for name in names:
        model = _load(inter, step)
        _, changed = getattr(P, name)().apply(model)
        assert changed is False, name


def test_annotate_input_reports_only_a_real_change(tiny):
    from bitcycle.compile import passes as P

    model = copy.deepcopy(tiny[0])
    model, changed = P.AnnotateInput(16).apply(model)
    assert changed is True and model.get_tensor_datatype(model.graph.input[0].name).name == "UINT5"
    assert P.AnnotateInput(16).apply(model)[1] is False
    assert P.AnnotateInput(255).apply(model)[1] is True


def test_a_pass_that_never_settles_is_stopped():
    from qonnx.transformation.base import Transformation

    from bitcycle.compile.steps import apply_passes

    class AlwaysChanged(Transformation):
        def apply(self, model):
            return model, True

    from qonnx.core.modelwrapper import ModelWrapper

    with pytest.raises(BitCycleError, match="AlwaysChanged still changes the graph after 4 rounds"):
        apply_passes(ModelWrapper(_threshold_transpose_graph()), [AlwaysChanged()])


def _threshold_transpose_graph(fork: str | None = None):
    """global_in [1,2,3,3] NCHW → MultiThreshold → Transpose(0,2,3,1) → out; ``fork`` adds an Identity
    reading the graph input ("input") or the quantised tensor ("quantised") as a second output."""
    from onnx import TensorProto, helper
    from qonnx.util.basic import qonnx_make_model

    nodes = [helper.make_node("MultiThreshold", ["global_in", "thr"], ["q"], domain="qonnx.custom_op.general",
                              out_dtype="UINT2"),
             helper.make_node("Transpose", ["q"], ["out"], perm=[0, 2, 3, 1])]
    outs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 3, 2])]
    if fork:
        nodes.append(helper.make_node("Identity", ["global_in" if fork == "input" else "q"], ["side"], name="side"))
        outs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 2, 3, 3]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, [1, 2, 3, 3])],
                              outs, initializer=[helper.make_tensor("thr", TensorProto.FLOAT, [2, 3],
                                                                    [1, 2, 3, 1, 2, 3])],
                              value_info=[helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 2, 3, 3])])
    return qonnx_make_model(graph)


def test_move_input_transpose_first_changes_once_and_keeps_the_function():
    import qonnx.core.onnx_exec as oxe
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.passes import MoveInputTransposeFirst

    model = ModelWrapper(_threshold_transpose_graph())
    x = np.random.default_rng(0).integers(0, 5, size=(1, 2, 3, 3)).astype(np.float32)
    want = oxe.execute_onnx(model, {"global_in": x})["out"]
    moved, changed = MoveInputTransposeFirst().apply(copy.deepcopy(model))
    assert changed is True and [n.op_type for n in moved.graph.node] == ["Transpose", "MultiThreshold"]
    np.testing.assert_array_equal(oxe.execute_onnx(moved, {"global_in": x})["out"], want)
    assert MoveInputTransposeFirst().apply(moved)[1] is False


@pytest.mark.parametrize("fork, tensor", [("input", "global_in"), ("quantised", "q")])
def test_move_input_transpose_first_rejects_a_forked_input(fork, tensor):
    from qonnx.core.modelwrapper import ModelWrapper

    from bitcycle.compile.passes import MoveInputTransposeFirst

    with pytest.raises(BitCycleError) as err:
        MoveInputTransposeFirst().apply(ModelWrapper(_threshold_transpose_graph(fork)))
    msg = str(err.value)
    assert f"tensor {tensor} feeds 2 nodes" in msg and "own input quantiser" in msg and "\n" not in msg


# -- the command line ------------------------------------------------------------------------------
TINY = ("--model", "tfc", "--set", "in_features=64", "--set", "width=16", "--set", "depth=1", "--check-images", "10")


def test_cli_stop_resume_and_rerun_from_config(tmp_path):
    out = tmp_path / "b"
    done = run_cli("compile", *TINY, "--out", str(out), "--stop-step", "step_map_to_engine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped after step_map_to_engine" in done.stdout and "--start-step step_specialize" in done.stdout
    assert not (out / "model.onnx").exists() and not (out / "codegen").exists()
    assert sorted(p.stem for p in (out / "intermediate_models").glob("*.onnx")) == sorted(EXPECTED_STEPS[:6])
    summary = json.loads((out / "compile.json").read_text())
    assert summary["steps_run"] == list(EXPECTED_STEPS[:6]) and summary["stages"]["engine"]["checked"] == 10

    done = run_cli("compile", *TINY, "--out", str(out), "--start-step", "step_specialize", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "compile.json").read_text())
    assert summary["steps_run"] == ["step_specialize", "step_fold"] and "resources" in summary
    assert (out / "model.onnx").is_file() and (out / "driver.json").is_file()
    assert sorted(p.stem for p in (out / "intermediate_models").glob("*.onnx")) == sorted(EXPECTED_STEPS)
    cfg = json.loads((out / "compile_config.json").read_text())
    assert cfg["start_step"] == "step_specialize" and cfg["out"] == str(out) and cfg["pixel_max"] == 16.0

    # the written config runs again by itself (here from its last step)
    done = run_cli("compile", "--config", str(out / "compile_config.json"), "--start-step", "step_fold", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "compile.json").read_text())["steps_run"] == ["step_fold"]
    assert json.loads((out / "compile_config.json").read_text())["model_cfg"] == '{"in_features": 64, "width": 16, "depth": 1}'


def test_cli_bad_step_and_missing_start_model_are_one_line(tmp_path):
    one_line_exit_2(run_cli("compile", *TINY, "--out", str(tmp_path / "x"), "--start-step", "fold", cwd=tmp_path),
                     f"--start-step 'fold' is not a step of this flow; valid steps: {', '.join(EXPECTED_STEPS)}")
    one_line_exit_2(run_cli("compile", *TINY, "--out", str(tmp_path / "x"), "--start-step", "step_fold", cwd=tmp_path),
                     "intermediate_models/step_specialize.onnx, which does not exist")
    assert not (tmp_path / "x").exists()
    one_line_exit_2(run_cli("compile", "--start-step", "step_fold", cwd=tmp_path), "no model to compile")
