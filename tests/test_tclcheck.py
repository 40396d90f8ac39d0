"""The generated block-design Tcl executed by the Vivado stand-in (bitcycle.compile.tclcheck) for
every supported board, the design it builds, and driver.json loaded against an engine built with
exactly the parameters bd.tcl sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tclcheck_project import compiled_once, copy_project, engine_of, mutate

BOARDS = {"pynq-z2": ("processing_system7", "M_AXI_GP0", "S_AXI_HP0", "FCLK_CLK0", "HP0_DDR_LOWOCM"),
          "ultra96": ("zynq_ultra_ps_e", "M_AXI_HPM0_FPD", "S_AXI_HP0_FPD", "pl_clk0", "HP0_DDR_LOW"),
          "zcu104": ("zynq_ultra_ps_e", "M_AXI_HPM0_FPD", "S_AXI_HP0_FPD", "pl_clk0", "HP0_DDR_LOW")}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    return compiled_once(tmp_path_factory)


def _board_tcl(board: str, compiled: Path, dest: Path) -> Path:
    """bd.tcl of ``board``: pynq-z2 is the compiled project's own, the others come from the same
    compile code (overlay_engine + write_block_design) on the project's rtl/."""
    from bitcycle.compile.folding import resolve_part
    from bitcycle.compile.project import overlay_engine, write_block_design

    tcl = copy_project(compiled, dest)
    if board != "pynq-z2":
        rtl_top = dest / "rtl" / "bitcycle_top.sv"
        write_block_design(dest / "bd", resolve_part(board), 100.0, overlay_engine(100.0, rtl_top), rtl_top)
    return tcl


@pytest.mark.parametrize("board", BOARDS)
def test_block_design_builds_for_every_board(board, compiled, tmp_path):
    from bitcycle.compile.tclcheck import run_tcl
    from bitcycle.hwif.driver_json import load

    ps_ip, master, hp, clk, ddr = BOARDS[board]
    design = run_tcl(_board_tcl(board, compiled, tmp_path))
    cells = design["cells"]
    assert {c: v["type"] for c, v in cells.items() if not v["automation"]} == {
        "ps": f"xilinx.com:ip:{ps_ip}", "axi_dma_0": "xilinx.com:ip:axi_dma", "bitcycle_top_0": "bitcycle_overlay"}
    assert sorted(v["type"].split(":")[-1] for v in cells.values() if v["automation"]) == \
        ["axi_interconnect", "axi_interconnect", "proc_sys_reset"]
    assert cells["axi_dma_0"]["set"] == {"c_include_sg": 0, "c_sg_length_width": 26,
                                         **{k: 64 for k in ("c_m_axi_mm2s_data_width", "c_m_axis_mm2s_tdata_width",
                                                              "c_m_axi_s2mm_data_width", "c_s_axis_s2mm_tdata_width")}}
    assert "M_AXI_SG" not in cells["axi_dma_0"]["interfaces"]  # direct register mode
    # the engine's parameters are driver.json's, every one set explicitly
    engine = load(compiled / "driver.json").engine
    assert design["module_parameters"]["bitcycle_top_0"] == engine.rtl_parameters
    assert cells["bitcycle_top_0"]["set"] == engine.rtl_parameters
    nets = {tuple(n) for n in design["interface_nets"]}
    assert ("/axi_dma_0/M_AXIS_MM2S", "/bitcycle_top_0/s_axis") in nets
    assert ("/axi_dma_0/S_AXIS_S2MM", "/bitcycle_top_0/m_axis") in nets
    assert cells["bitcycle_top_0"]["interfaces"]["s_axis"]["width"] == 64 == 8 * engine.stream_bytes
    clock_net = next(p for p in design["nets"].values() if f"/ps/{clk}" in p)
    assert {"/bitcycle_top_0/clk_i", "/axi_dma_0/s_axi_lite_aclk", "/axi_dma_0/m_axi_mm2s_aclk"} <= set(clock_net)
    reset_net = next(p for p in design["nets"].values() if "/bitcycle_top_0/rst_ni" in p)
    assert any(p.endswith("/peripheral_aresetn") for p in reset_net) and "/axi_dma_0/axi_resetn" in reset_net
    segs = {(s["master"], s["slave"]): s for s in design["address_map"]}
    assert {k for k in segs} == {(f"/ps/{master}", "/axi_dma_0/S_AXI_LITE"), (f"/ps/{master}", "/bitcycle_top_0/s_axil"),
                                 ("/axi_dma_0/M_AXI_MM2S", f"/ps/{hp}"), ("/axi_dma_0/M_AXI_S2MM", f"/ps/{hp}")}
    assert segs[(f"/ps/{master}", "/bitcycle_top_0/s_axil")]["range"] == 4096  # 6-bit AXI-Lite, 4 KiB minimum
    assert segs[("/axi_dma_0/M_AXI_MM2S", f"/ps/{hp}")]["segment"] == ddr
    # what only Vivado does is recorded, not faked: the run and the two files it leaves
    vendor = [r for r in design["log"] if r.get("vendor_only")]
    assert [r["what"] for r in vendor] == ["launch_runs", "wait_on_run", "copy", "copy"]
    assert vendor[0]["top"] == "bitcycle_wrapper" and vendor[0]["to_step"] == "write_bitstream"
    assert [Path(r["to"]).name for r in vendor[2:]] == ["bitcycle.bit", "bitcycle.hwh"]
    assert [r["produced_by"] for r in vendor[2:]] == ["bit", "hwh"]
    codes = next(f for f in design["files"] if f["path"].endswith("bitcycle_codes.svh"))
    assert codes["global_include"] == 1


@pytest.mark.rtl
def test_overlay_parameters_are_driver_json_and_the_sim_engine_accepts_it(compiled):
    """The sim engine built with exactly the parameters the stand-in recorded from bd.tcl passes the
    driver's identity check for the compiled driver.json."""
    from bitcycle.compile.tclcheck import run_tcl
    from bitcycle.driver import Accelerator
    from bitcycle.driver.sim_backend import SimTransport, build_parameters
    from bitcycle.hwif.driver_json import load

    params = run_tcl(compiled / "bd" / "bd.tcl")["module_parameters"]["bitcycle_top_0"]
    engine = engine_of(params)
    assert build_parameters(engine) == params == load(compiled / "driver.json").engine.rtl_parameters
    transport = SimTransport(engine)
    transport.overlay_path = compiled / "bd" / "bd.tcl"
    with Accelerator("sim", transport=transport, driver_json=compiled / "driver.json") as acc:
        assert acc.reg_read("ID") == engine.id


@pytest.mark.rtl
def test_a_changed_bd_tcl_parameter_fails_the_identity_check(compiled, tmp_path):
    """One CONFIG changed in a copy of bd.tcl: the engine built from what the stand-in records is
    rejected by the driver, naming the overlay's value and driver.json's."""
    from bitcycle.compile.tclcheck import run_tcl
    from bitcycle.driver import Accelerator
    from bitcycle.driver.sim_backend import SimTransport
    from bitcycle.errors import BitCycleError

    tcl = copy_project(compiled, tmp_path)
    mutate(tcl, "CONFIG.WMEM_DEPTH {1024}", "CONFIG.WMEM_DEPTH {512}")
    params = run_tcl(tcl)["module_parameters"]["bitcycle_top_0"]
    assert params["WMEM_DEPTH"] == 512
    transport = SimTransport(engine_of(params))
    transport.overlay_path = tcl
    with pytest.raises(BitCycleError) as err:
        Accelerator("sim", transport=transport, driver_json=compiled / "driver.json")
    transport.close()
    msg = str(err.value)
    assert f"overlay {tcl} was built with other parameters than {compiled / 'driver.json'}" in msg
    assert "WMEM_DEPTH=512 (driver.json: 1024)" in msg


def test_module_reference_reads_the_real_hdl(compiled, tmp_path):
    """The wrapper's ports and parameters come from Verilator on the project's files: a parameter
    added to the copied RTL top shows up, and the stream width follows DATA_W."""
    from bitcycle.compile.tclcheck.hdl import module_interface

    rtl = sorted(str(p) for p in (compiled / "rtl").glob("*.sv")) + [str(compiled / "bd" / "bitcycle_overlay.v")]
    desc = module_interface("bitcycle_overlay", [str(compiled / "rtl" / "bitcycle_codes.svh"), *rtl], {"DATA_W": "32"})
    assert desc["language"] == "verilog" and desc["parameters"]["DATA_W"] == 32
    assert desc["ports"]["s_axis_tdata"] == {"dir": "input", "width": 32}
    assert desc["ports"]["m_axis_tkeep"] == {"dir": "output", "width": 4}
    assert desc["attributes"]["clk_i"]["X_INTERFACE_PARAMETER"] == "ASSOCIATED_BUSIF s_axil:s_axis:m_axis, ASSOCIATED_RESET rst_ni"
