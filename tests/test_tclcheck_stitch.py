"""FINN's stitched-IP Tcl (CreateStitchedIP's make_project.tcl for the compiled tiny MLP, written by
FINN's own transformation up to its Vivado call) executed by the Vivado stand-in: every layer's
module reference elaborates from the files the script adds, the streams chain with equal widths
from s_axis_0 to m_axis_0, and the ipx:: packaging is recorded as vendor-only."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tclcheck_project import compiled_once, line_of, mutate


@pytest.fixture(scope="module")
def stitch_tcl(tmp_path_factory):
    import finn
    from finn.transformation.fpgadataflow.create_stitched_ip import CreateStitchedIP
    from finn.util.settings import initialize_dummy_settings
    from qonnx.core.modelwrapper import ModelWrapper

    import bitcycle.compile.customop  # noqa: F401  (registers BitSerialMVAU)
    from bitcycle.bench.dataflow import _dataflow_only

    project = compiled_once(tmp_path_factory)
    build = tmp_path_factory.mktemp("stitch")
    os.environ["FINN_BUILD_DIR"] = str(build)
    os.environ.setdefault("FINN_RTLLIB", str(Path(finn.__file__).parent / "finn-rtllib"))
    initialize_dummy_settings()
    model = _dataflow_only(ModelWrapper(str(project / "model.onnx")))
    with pytest.raises(FileNotFoundError, match="vivado not found"):
        model.transform(CreateStitchedIP("xc7z020clg400-1", 10.0))
    return next(build.glob("vivado_stitch_proj_*/make_project.tcl")), model


def _copy(stitch_tcl, tmp_path) -> Path:
    """The stitch directory copied (the script names its own directory by absolute path)."""
    tcl, _ = stitch_tcl
    dest = tmp_path / tcl.parent.name
    shutil.copytree(tcl.parent, dest)
    text = tcl.read_text().replace(str(tcl.parent), str(dest))
    (dest / tcl.name).write_text(text)
    return dest / tcl.name


def test_finn_stitched_ip_tcl_builds(stitch_tcl):
    from qonnx.custom_op.registry import getCustomOp

    from bitcycle.compile.tclcheck import run_tcl

    tcl, model = stitch_tcl
    design = run_tcl(tcl)
    hw = [n for n in model.graph.node]
    assert sorted(design["cells"]) == sorted([n.name for n in hw] + ["sim_ctrl_0"])
    for node in hw:
        cell = design["cells"][node.name]
        assert cell["kind"] == "module"
        assert f"create_bd_cell -type module -reference {cell['type']} {node.name}" in getCustomOp(node).code_generation_ipi()
    # one stream chain through every layer in graph order, widths equal on each link (checked on connect)
    nets = {a: b for a, b in design["interface_nets"]} | {b: a for a, b in design["interface_nets"]}
    at, order = nets["/s_axis_0"], []
    while at != "/m_axis_0" and len(order) <= len(hw):
        cell = at.split("/")[1]
        order.append(cell)
        at = nets[f"/{cell}/out0_V"]
    assert order == [n.name for n in hw]
    for node in hw:
        inst = getCustomOp(node)
        ifs = design["cells"][node.name]["interfaces"]
        assert ifs["in0_V"]["width"] == inst.get_instream_width_padded()
        assert ifs["out0_V"]["width"] == inst.get_outstream_width_padded()
    clock = next(p for p in design["nets"].values() if "/ap_clk" in p)
    assert {f"/{n.name}/ap_clk" for n in hw} <= set(clock)
    vendor = [r["what"] for r in design["log"] if r.get("vendor_only")]
    assert vendor[:2] == ["ipx_package_project", "ipx_save_core"] and "read" in vendor  # component.xml: Vivado's
    # FINN adds its design wrapper from .srcs; Vivado >= 2020.2 writes it under .gen (2021+ looks there)
    assert any("finn_design_wrapper.v is not written by Vivado >= 2020.2" in w for w in design["warnings"])
    # FINN adds the shared bitcycle_mvau files once per layer: Vivado skips the repeats (a warning)
    repeats = [w for w in design["warnings"] if "bitcycle_mvau.sv is already in the project" in w]
    assert len(repeats) == sum(n.op_type.startswith("BitSerialMVAU") for n in hw) - 1


def test_stitched_ip_faults(stitch_tcl, tmp_path):
    from bitcycle.compile.tclcheck import TclCheckError, run_tcl

    tcl = _copy(stitch_tcl, tmp_path / "a")
    line = mutate(tcl, "[get_bd_intf_pins BitSerialMVAU_rtl_1/in0_V]", "[get_bd_intf_pins BitSerialMVAU_rtl_1/in0]")
    with pytest.raises(TclCheckError, match=rf"^make_project.tcl:{line}: get_bd_intf_pins: cell BitSerialMVAU_rtl_1 has no interface pin 'in0'"):
        run_tcl(tcl)
    # the last layer's output looped into the first layer's input: widths differ, stopped on connect
    from qonnx.custom_op.registry import getCustomOp

    _, model = stitch_tcl
    first, last = (getCustomOp(n) for n in (model.graph.node[0], model.graph.node[-1]))
    w_out, w_in = last.get_outstream_width_padded(), first.get_instream_width_padded()
    assert w_out != w_in
    a, b = model.graph.node[0].name, model.graph.node[-1].name
    tcl = _copy(stitch_tcl, tmp_path / "b")
    text = tcl.read_text()
    link = next(l for l in text.splitlines() if l.startswith(f"connect_bd_intf_net [get_bd_intf_pins {a}/out0_V]"))
    tcl.write_text(text.replace(link, f"connect_bd_intf_net [get_bd_intf_pins {b}/out0_V] [get_bd_intf_pins {a}/in0_V]"))
    with pytest.raises(TclCheckError, match=rf"^make_project.tcl:{line_of(tcl, f'{b}/out0_V] [get_bd_intf_pins {a}/in0_V]')}: "
                                            rf"connect_bd_intf_net: AXI-Stream TDATA widths differ: /{b}/out0_V is {w_out} bits, /{a}/in0_V is {w_in} bits"):
        run_tcl(tcl)
    tcl = _copy(stitch_tcl, tmp_path / "c")
    wrapper = next(l.split()[2] for l in tcl.read_text().splitlines() if l.endswith("BitSerialMVAU_rtl_1_wrapper.v"))
    Path(wrapper).rename(wrapper + ".gone")
    try:
        with pytest.raises(TclCheckError, match=rf"^make_project.tcl:{line_of(tcl, wrapper)}: add_files: {wrapper} does not exist"):
            run_tcl(tcl)
    finally:
        Path(wrapper + ".gone").rename(wrapper)
