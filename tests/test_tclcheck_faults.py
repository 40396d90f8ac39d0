"""Faults injected into copies of a generated bd.tcl: each stops the Vivado stand-in with one line
naming bd.tcl's line and the mistake. The first three are the mistakes the stand-in found in the
template (and which are fixed there); reintroducing one must fail again."""

from __future__ import annotations

import pytest

from tclcheck_project import compiled_once, copy_project, line_of, mutate


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    return compiled_once(tmp_path_factory)


def _fails(tcl, line: int, *needles: str) -> str:
    from bitcycle.compile.tclcheck import TclCheckError, run_tcl

    with pytest.raises(TclCheckError) as err:
        run_tcl(tcl)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"bd.tcl:{line}: "), msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_the_unchanged_copy_passes(compiled, tmp_path):
    from bitcycle.compile.tclcheck import run_tcl

    assert run_tcl(copy_project(compiled, tmp_path))["ok"] is True


def test_systemverilog_module_reference(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "-reference bitcycle_overlay", "-reference bitcycle_top")
    _fails(tcl, line, "bitcycle_top is defined in bitcycle_top.sv (systemverilog)", "UG994")


def test_header_not_a_global_include(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    mutate(tcl, "set_property is_global_include true", "set_property used_in_synthesis true")
    _fails(tcl, line_of(tcl, "create_bd_cell -type module"), "Verilator cannot elaborate", "BITCYCLE_CODES")


def test_zynqmp_unused_hpm1_left_on(compiled, tmp_path):
    from bitcycle.compile.folding import resolve_part
    from bitcycle.compile.project import overlay_engine, write_block_design

    tcl = copy_project(compiled, tmp_path)
    top = tmp_path / "rtl" / "bitcycle_top.sv"
    write_block_design(tmp_path / "bd", resolve_part("zcu104"), 100.0, overlay_engine(100.0, top), top)
    mutate(tcl, " CONFIG.PSU__USE__M_AXI_GP1 {0}", "")
    _fails(tcl, line_of(tcl, "validate_bd_design"), "clock pin /ps/maxihpm1_fpd_aclk is not driven")


def test_misspelt_interface_pin(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "[get_bd_intf_pins axi_dma_0/M_AXIS_MM2S]", "[get_bd_intf_pins axi_dma_0/M_AXIS_MM2]")
    _fails(tcl, line, "cell axi_dma_0 has no interface pin 'M_AXIS_MM2'", "M_AXIS_MM2S")


def test_misspelt_pin(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "[get_bd_pins bitcycle_top_0/clk_i]]]", "[get_bd_pins bitcycle_top_0/clk]]]")
    _fails(tcl, line, "cell bitcycle_top_0 has no pin 'clk'", "clk_i")


def test_missing_file(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    (tmp_path / "bd" / "bitcycle_overlay.v").unlink()
    _fails(tcl, line_of(tcl, "add_files -norecurse $bd_dir/bitcycle_overlay.v"), "bitcycle_overlay.v does not exist")


def test_stream_width_mismatch(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    mutate(tcl, "CONFIG.c_m_axis_mm2s_tdata_width {64}", "CONFIG.c_m_axis_mm2s_tdata_width {32}")
    _fails(tcl, line_of(tcl, "connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S]"),
           "AXI-Stream TDATA widths differ: /axi_dma_0/M_AXIS_MM2S is 32 bits, /bitcycle_top_0/s_axis is 64 bits")


def test_engine_width_follows_data_w(compiled, tmp_path):
    """DATA_W on the module reference re-elaborates its ports: the 64-bit DMA stream no longer fits."""
    tcl = copy_project(compiled, tmp_path)
    mutate(tcl, "CONFIG.DATA_W {64}", "CONFIG.DATA_W {32}")
    _fails(tcl, line_of(tcl, "connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S]"),
           "/axi_dma_0/M_AXIS_MM2S is 64 bits, /bitcycle_top_0/s_axis is 32 bits")


def test_unknown_module_parameter(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "CONFIG.WMEM_DEPTH {1024}", "CONFIG.WMEM_DEPT {1024}")
    _fails(tcl, line, "module reference bitcycle_overlay (bitcycle_top_0) has no parameter WMEM_DEPT", "WMEM_DEPTH")


def test_unknown_ip_parameter_and_illegal_value(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "CONFIG.c_sg_length_width {26}", "CONFIG.c_sg_lenght_width {26}")
    _fails(tcl, line, "axi_dma (axi_dma_0) has no parameter c_sg_lenght_width")
    tcl.write_text(tcl.read_text().replace("c_sg_lenght_width {26}", "c_sg_length_width {27}"))
    _fails(tcl, line, "c_sg_length_width {27}: axi_dma allows 8, 9,")


def test_unknown_command(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "validate_bd_design\n", "validate_bd_desing\n")
    _fails(tcl, line, "unknown Vivado command 'validate_bd_desing'")


def test_unconnected_stream(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    mutate(tcl, "connect_bd_intf_net [get_bd_intf_pins bitcycle_top_0/m_axis] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]\n", "")
    _fails(tcl, line_of(tcl, "validate_bd_design"), "interface /axi_dma_0/S_AXIS_S2MM is not connected",
           "interface /bitcycle_top_0/m_axis is not connected")


def test_ps_configured_before_its_preset(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    text = tcl.read_text()
    preset = next(line for line in text.splitlines() if "apply_board_preset" in line)
    config = next(line for line in text.splitlines() if "PCW_USE_S_AXI_HP0" in line)
    tcl.write_text(text.replace(preset + "\n", "").replace(config + "\n", config + "\n" + preset + "\n"))
    _fails(tcl, line_of(tcl, "apply_board_preset"), "the preset overwrites them", "PCW_USE_S_AXI_HP0")


def test_copy_of_a_file_vivado_does_not_write(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "impl_1/bitcycle_wrapper.bit", "impl_1/bitcycle.bit")
    _fails(tcl, line, "bitcycle.runs/impl_1/bitcycle.bit does not exist and no earlier command produces it")


def test_no_board_part_for_the_preset(compiled, tmp_path):
    """Without the board file the PS preset keeps the IP's defaults (DDR, MIO, clocks): a dead board."""
    tcl = copy_project(compiled, tmp_path)
    text = tcl.read_text()
    board = next(line for line in text.splitlines() if line.startswith("set_property board_part"))
    tcl.write_text(text.replace(board + "\n", ""))
    _fails(tcl, line_of(tcl, "apply_board_preset"), "without a board_part on the project")


def test_board_part_of_another_device(compiled, tmp_path):
    tcl = copy_project(compiled, tmp_path)
    line = mutate(tcl, "tul.com.tw:pynq-z2:part0:1.0", "xilinx.com:zcu104:part0:1.1")
    _fails(tcl, line, "that board's device is xczu7ev-ffvc1156-2-e", "xc7z020clg400-1")
