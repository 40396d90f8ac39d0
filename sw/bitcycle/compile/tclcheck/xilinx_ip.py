"""The Xilinx IPs the stand-in knows: interface pins, plain pins and CONFIG parameters (names and
defaults), each interface/pin gated by the CONFIG that enables it.

Names follow the IP product guides: PG021 (axi_dma 7.1), PG082 (processing_system7 5.5), PG201
(zynq_ultra_ps_e 3.x), PG164 (proc_sys_reset 5.0), PG059 (axi_interconnect 2.1), PG247
(smartconnect 1.0). Only the parameters a script may set are listed; an unknown one is an error, as
it is in Vivado. Defaults are the IP's own (no board preset). ``allowed`` lists the legal values
where the guide gives a short list.
"""

from __future__ import annotations


def _aximm(mode: str, clock: str, enable: str = "") -> dict:
    return {"kind": "aximm", "mode": mode, "clock": clock, "enable": enable}


def _pin(direction: str, kind: str = "data", enable: str = "") -> dict:
    return {"dir": direction, "type": kind, "enable": enable}


def _ps7() -> dict:
    config = {"PCW_USE_M_AXI_GP0": 1, "PCW_USE_M_AXI_GP1": 0, "PCW_USE_S_AXI_GP0": 0, "PCW_USE_S_AXI_GP1": 0,
              "PCW_USE_S_AXI_ACP": 0, "PCW_USE_FABRIC_INTERRUPT": 0, "PCW_IRQ_F2P_INTR": 0,
              "PCW_EN_CLK0_PORT": 1, "PCW_EN_RST0_PORT": 1, "PCW_FPGA0_PERIPHERAL_FREQMHZ": 50,
              "PCW_FPGA1_PERIPHERAL_FREQMHZ": 50, "PCW_EN_CLK1_PORT": 0, "PCW_EN_RST1_PORT": 0,
              "PCW_PRESET_BANK0_VOLTAGE": "LVCMOS 3.3V", "PCW_PRESET_BANK1_VOLTAGE": "LVCMOS 1.8V"}
    intf = {"M_AXI_GP0": _aximm("master", "M_AXI_GP0_ACLK", "PCW_USE_M_AXI_GP0"),
            "M_AXI_GP1": _aximm("master", "M_AXI_GP1_ACLK", "PCW_USE_M_AXI_GP1"),
            "S_AXI_GP0": _aximm("slave", "S_AXI_GP0_ACLK", "PCW_USE_S_AXI_GP0"),
            "S_AXI_GP1": _aximm("slave", "S_AXI_GP1_ACLK", "PCW_USE_S_AXI_GP1"),
            "S_AXI_ACP": _aximm("slave", "S_AXI_ACP_ACLK", "PCW_USE_S_AXI_ACP"),
            "DDR": {"kind": "ddrx", "mode": "master", "clock": "", "enable": ""},
            "FIXED_IO": {"kind": "display_processing_system7", "mode": "master", "clock": "", "enable": ""}}
    pins = {"FCLK_CLK0": _pin("output", "clk", "PCW_EN_CLK0_PORT"),
            "FCLK_CLK1": _pin("output", "clk", "PCW_EN_CLK1_PORT"),
            "FCLK_RESET0_N": _pin("output", "rst", "PCW_EN_RST0_PORT"),
            "FCLK_RESET1_N": _pin("output", "rst", "PCW_EN_RST1_PORT"),
            "IRQ_F2P": _pin("input", "intr", "PCW_USE_FABRIC_INTERRUPT")}
    for name in ("M_AXI_GP0", "M_AXI_GP1", "S_AXI_GP0", "S_AXI_GP1", "S_AXI_ACP"):
        pins[f"{name}_ACLK"] = _pin("input", "clk", intf[name]["enable"])
    for i in range(4):
        config[f"PCW_USE_S_AXI_HP{i}"] = 0
        config[f"PCW_S_AXI_HP{i}_DATA_WIDTH"] = 64
        intf[f"S_AXI_HP{i}"] = _aximm("slave", f"S_AXI_HP{i}_ACLK", f"PCW_USE_S_AXI_HP{i}")
        pins[f"S_AXI_HP{i}_ACLK"] = _pin("input", "clk", f"PCW_USE_S_AXI_HP{i}")
    allowed = {f"PCW_S_AXI_HP{i}_DATA_WIDTH": [32, 64] for i in range(4)}
    return {"config": config, "allowed": allowed, "interfaces": intf, "pins": pins,
            "external": ["DDR", "FIXED_IO"], "clock_out": "FCLK_CLK0", "reset_out": "FCLK_RESET0_N",
            "freq_param": "PCW_FPGA0_PERIPHERAL_FREQMHZ", "prefix": "ps7_0",
            "apertures": {"M_AXI_GP0": [0x40000000, 0x40000000], "M_AXI_GP1": [0x80000000, 0x40000000]},
            "memory": {f"S_AXI_HP{i}": ["HP{}_DDR_LOWOCM".format(i), 0x0, 0x20000000] for i in range(4)}}


def _zynqmp() -> dict:
    config = {"PSU__USE__M_AXI_GP0": 1, "PSU__USE__M_AXI_GP1": 1, "PSU__USE__M_AXI_GP2": 0,
              "PSU__MAXIGP0__DATA_WIDTH": 128, "PSU__MAXIGP1__DATA_WIDTH": 128, "PSU__MAXIGP2__DATA_WIDTH": 32,
              "PSU__FPGA_PL0_ENABLE": 1, "PSU__FPGA_PL1_ENABLE": 0, "PSU__NUM_FABRIC_RESETS": 1,
              "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ": 100, "PSU__CRL_APB__PL1_REF_CTRL__FREQMHZ": 100,
              "PSU__USE__IRQ0": 0, "PSU__USE__IRQ1": 0}
    intf = {"M_AXI_HPM0_FPD": _aximm("master", "maxihpm0_fpd_aclk", "PSU__USE__M_AXI_GP0"),
            "M_AXI_HPM1_FPD": _aximm("master", "maxihpm1_fpd_aclk", "PSU__USE__M_AXI_GP1"),
            "M_AXI_HPM0_LPD": _aximm("master", "maxihpm0_lpd_aclk", "PSU__USE__M_AXI_GP2")}
    pins = {"pl_clk0": _pin("output", "clk", "PSU__FPGA_PL0_ENABLE"),
            "pl_clk1": _pin("output", "clk", "PSU__FPGA_PL1_ENABLE"),
            "pl_resetn0": _pin("output", "rst", ""),
            "pl_ps_irq0": _pin("input", "intr", "PSU__USE__IRQ0"),
            "maxihpm0_fpd_aclk": _pin("input", "clk", "PSU__USE__M_AXI_GP0"),
            "maxihpm1_fpd_aclk": _pin("input", "clk", "PSU__USE__M_AXI_GP1"),
            "maxihpm0_lpd_aclk": _pin("input", "clk", "PSU__USE__M_AXI_GP2")}
    # S_AXI_GPn: 0/1 = HPC0/1_FPD, 2..5 = HP0..3_FPD, 6 = LPD (PG201)
    slaves = {0: ("S_AXI_HPC0_FPD", "saxihpc0_fpd_aclk"), 1: ("S_AXI_HPC1_FPD", "saxihpc1_fpd_aclk"),
              2: ("S_AXI_HP0_FPD", "saxihp0_fpd_aclk"), 3: ("S_AXI_HP1_FPD", "saxihp1_fpd_aclk"),
              4: ("S_AXI_HP2_FPD", "saxihp2_fpd_aclk"), 5: ("S_AXI_HP3_FPD", "saxihp3_fpd_aclk"),
              6: ("S_AXI_LPD", "saxi_lpd_aclk")}
    memory = {}
    for i, (name, clk) in slaves.items():
        config[f"PSU__USE__S_AXI_GP{i}"] = 0
        config[f"PSU__SAXIGP{i}__DATA_WIDTH"] = 128
        intf[name] = _aximm("slave", clk, f"PSU__USE__S_AXI_GP{i}")
        pins[clk] = _pin("input", "clk", f"PSU__USE__S_AXI_GP{i}")
        memory[name] = [f"{name.split('_')[2]}_DDR_LOW", 0x0, 0x80000000]
    return {"config": config, "allowed": {}, "interfaces": intf, "pins": pins, "external": [],
            "clock_out": "pl_clk0", "reset_out": "pl_resetn0", "freq_param": "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
            "prefix": "ps8_0",
            "apertures": {"M_AXI_HPM0_FPD": [0xA0000000, 0x10000000], "M_AXI_HPM1_FPD": [0xB0000000, 0x10000000],
                          "M_AXI_HPM0_LPD": [0x80000000, 0x20000000]},
            "memory": memory}


def _axi_dma() -> dict:
    config = {"c_include_sg": 1, "c_sg_length_width": 14, "c_sg_include_stscntrl_strm": 0,
              "c_include_mm2s": 1, "c_include_s2mm": 1, "c_m_axi_mm2s_data_width": 32,
              "c_m_axis_mm2s_tdata_width": 32, "c_m_axi_s2mm_data_width": 32, "c_s_axis_s2mm_tdata_width": 32,
              "c_mm2s_burst_size": 16, "c_s2mm_burst_size": 16, "c_include_mm2s_dre": 0, "c_include_s2mm_dre": 0,
              "c_addr_width": 32, "c_micro_dma": 0, "c_enable_multi_channel": 0, "c_prmry_is_aclk_async": 0,
              "c_include_mm2s_sf": 1, "c_include_s2mm_sf": 1, "c_increase_throughput": 0,
              "c_sg_use_stsapp_length": 0, "c_single_interface": 0}
    mm = [32, 64, 128, 256, 512, 1024]
    allowed = {"c_include_sg": [0, 1], "c_sg_length_width": list(range(8, 27)),
               "c_m_axi_mm2s_data_width": mm, "c_m_axi_s2mm_data_width": mm,
               "c_m_axis_mm2s_tdata_width": [8, 16, *mm], "c_s_axis_s2mm_tdata_width": [8, 16, *mm],
               "c_mm2s_burst_size": [2, 4, 8, 16, 32, 64, 128, 256], "c_s2mm_burst_size": [2, 4, 8, 16, 32, 64, 128, 256],
               "c_addr_width": list(range(32, 65))}
    intf = {"S_AXI_LITE": _aximm("slave", "s_axi_lite_aclk"),
            "M_AXI_SG": _aximm("master", "m_axi_sg_aclk", "c_include_sg"),
            "M_AXI_MM2S": _aximm("master", "m_axi_mm2s_aclk", "c_include_mm2s"),
            "M_AXI_S2MM": _aximm("master", "m_axi_s2mm_aclk", "c_include_s2mm"),
            "M_AXIS_MM2S": {"kind": "axis", "mode": "master", "clock": "m_axi_mm2s_aclk", "enable": "c_include_mm2s",
                            "width_param": "c_m_axis_mm2s_tdata_width"},
            "S_AXIS_S2MM": {"kind": "axis", "mode": "slave", "clock": "m_axi_s2mm_aclk", "enable": "c_include_s2mm",
                            "width_param": "c_s_axis_s2mm_tdata_width"},
            "M_AXIS_MM2S_CNTRL": {"kind": "axis", "mode": "master", "clock": "m_axi_mm2s_aclk",
                                  "enable": "c_sg_include_stscntrl_strm", "width_param": ""},
            "S_AXIS_S2MM_STS": {"kind": "axis", "mode": "slave", "clock": "m_axi_s2mm_aclk",
                                "enable": "c_sg_include_stscntrl_strm", "width_param": ""}}
    pins = {"s_axi_lite_aclk": _pin("input", "clk"), "m_axi_sg_aclk": _pin("input", "clk", "c_include_sg"),
            "m_axi_mm2s_aclk": _pin("input", "clk", "c_include_mm2s"),
            "m_axi_s2mm_aclk": _pin("input", "clk", "c_include_s2mm"),
            "axi_resetn": _pin("input", "rst"),
            "mm2s_prmry_reset_out_n": _pin("output", "rst", "c_include_mm2s"),
            "s2mm_prmry_reset_out_n": _pin("output", "rst", "c_include_s2mm"),
            "mm2s_introut": _pin("output", "intr", "c_include_mm2s"),
            "s2mm_introut": _pin("output", "intr", "c_include_s2mm"),
            "axi_dma_tstvec": _pin("output")}
    return {"config": config, "allowed": allowed, "interfaces": intf, "pins": pins, "external": [],
            "reset_of": {"S_AXI_LITE": "axi_resetn"}, "register_range": 0x10000}


def _proc_sys_reset() -> dict:
    config = {"C_EXT_RST_WIDTH": 4, "C_AUX_RST_WIDTH": 4, "C_EXT_RESET_HIGH": 0, "C_AUX_RESET_HIGH": 0,
              "C_NUM_BUS_RST": 1, "C_NUM_PERP_RST": 1, "C_NUM_INTERCONNECT_ARESETN": 1, "C_NUM_PERP_ARESETN": 1}
    pins = {"slowest_sync_clk": _pin("input", "clk"), "ext_reset_in": _pin("input", "rst"),
            "aux_reset_in": _pin("input", "rst"), "mb_debug_sys_rst": _pin("input", "rst"),
            "dcm_locked": _pin("input"), "mb_reset": _pin("output", "rst"),
            "bus_struct_reset": _pin("output", "rst"), "peripheral_reset": _pin("output", "rst"),
            "interconnect_aresetn": _pin("output", "rst"), "peripheral_aresetn": _pin("output", "rst")}
    return {"config": config, "allowed": {}, "interfaces": {}, "pins": pins, "external": [],
            "required_pins": ["slowest_sync_clk", "ext_reset_in"]}


def _interconnect(smart: bool) -> dict:
    config = {"NUM_SI": 1, "NUM_MI": 1 if smart else 2}
    if smart:
        config["NUM_CLKS"] = 1
    intf, pins = {}, {}
    clk = "aclk" if smart else "ACLK"
    pins[clk] = _pin("input", "clk")
    pins["aresetn" if smart else "ARESETN"] = _pin("input", "rst")
    for side, n, mode in (("S", 16, "slave"), ("M", 64 if not smart else 16, "master")):
        for i in range(n):
            name = f"{side}{i:02d}"
            gate = f"{'NUM_SI' if side == 'S' else 'NUM_MI'}>{i}"
            own_clk = clk if smart else f"{name}_ACLK"
            intf[f"{name}_AXI"] = _aximm(mode, own_clk, gate)
            if not smart:
                pins[f"{name}_ACLK"] = _pin("input", "clk", gate)
                pins[f"{name}_ARESETN"] = _pin("input", "rst", gate)
    return {"config": config, "allowed": {"NUM_SI": list(range(1, 17)), "NUM_MI": list(range(1, 65))},
            "interfaces": intf, "pins": pins, "external": []}


def catalog() -> dict:
    return {"processing_system7": _ps7(), "zynq_ultra_ps_e": _zynqmp(), "axi_dma": _axi_dma(),
            "proc_sys_reset": _proc_sys_reset(), "axi_interconnect": _interconnect(False),
            "smartconnect": _interconnect(True)}
