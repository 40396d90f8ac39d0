// bitcycle_top: the BitCycle engine for a Zynq block design. One clock, one active-low reset,
// an AXI4-Lite slave (the register block generated from hw/regs/bitcycle.rdl) and two
// AXI4-Stream ports that connect straight to an AXI DMA (MM2S -> s_axis, m_axis -> S2MM; 32- or
// 64-bit data, TLAST ends each job's packet, TKEEP out marks the result lanes of the last beat,
// TKEEP in is ignored: the DMA sends whole words).
module bitcycle_top #(
  parameter int PE         = 4,
  parameter int SIMD       = 16,
  parameter int ACC_BITS   = 32,
  parameter int DATA_W     = 32,
  parameter int THR_MAX    = 1,
  parameter int WMEM_DEPTH = 256,
  parameter int AMEM_DEPTH = 256,
  parameter int TMEM_DEPTH = 64,
  parameter int MAX_CHUNKS = 64,
  // pipeline registers for the clock (1: on): the block RAMs' output registers, and a register
  // inside each popcount tree of the array; each costs one cycle of latency per job
  parameter int READ_REG   = 1,
  parameter int POP_REG    = 1
) (
  input  logic                clk_i,
  input  logic                rst_ni,
  // AXI4-Lite control (6-bit byte address)
  output logic                s_axil_awready,
  input  logic                s_axil_awvalid,
  input  logic [5:0]          s_axil_awaddr,
  input  logic [2:0]          s_axil_awprot,
  output logic                s_axil_wready,
  input  logic                s_axil_wvalid,
  input  logic [31:0]         s_axil_wdata,
  input  logic [3:0]          s_axil_wstrb,
  input  logic                s_axil_bready,
  output logic                s_axil_bvalid,
  output logic [1:0]          s_axil_bresp,
  output logic                s_axil_arready,
  input  logic                s_axil_arvalid,
  input  logic [5:0]          s_axil_araddr,
  input  logic [2:0]          s_axil_arprot,
  input  logic                s_axil_rready,
  output logic                s_axil_rvalid,
  output logic [31:0]         s_axil_rdata,
  output logic [1:0]          s_axil_rresp,
  // AXI4-Stream in (from DMA MM2S)
  input  logic [DATA_W-1:0]   s_axis_tdata,
  input  logic [DATA_W/8-1:0] s_axis_tkeep,
  input  logic                s_axis_tvalid,
  output logic                s_axis_tready,
  input  logic                s_axis_tlast,
  // AXI4-Stream out (to DMA S2MM)
  output logic [DATA_W-1:0]   m_axis_tdata,
  output logic [DATA_W/8-1:0] m_axis_tkeep,
  output logic                m_axis_tvalid,
  input  logic                m_axis_tready,
  output logic                m_axis_tlast
);

  import bitcycle_regs_pkg::*;

  bitcycle_param_check #(.FAIL(READ_REG < 0 || READ_REG > 1 || POP_REG < 0 || POP_REG > 1),
      .MSG("bitcycle_top: READ_REG and POP_REG are 0 (off) or 1 (on)")) u_check_pipe ();

  bitcycle_regs__in_t  hwif_in;
  bitcycle_regs__out_t hwif_out;
  logic                busy, done, aborted, checking;
  logic [8:0]          error;
  logic [31:0]         cycles;

  bitcycle_regs u_regs (
    .clk(clk_i),
    .arst_n(rst_ni),
    .s_axil_awready, .s_axil_awvalid, .s_axil_awaddr, .s_axil_awprot,
    .s_axil_wready, .s_axil_wvalid, .s_axil_wdata, .s_axil_wstrb,
    .s_axil_bready, .s_axil_bvalid, .s_axil_bresp,
    .s_axil_arready, .s_axil_arvalid, .s_axil_araddr, .s_axil_arprot,
    .s_axil_rready, .s_axil_rvalid, .s_axil_rdata, .s_axil_rresp,
    .hwif_in, .hwif_out
  );

  always_comb begin
    hwif_in.HWCFG0.PE.next              = 8'(PE);
    hwif_in.HWCFG0.SIMD.next            = 8'(SIMD);
    hwif_in.HWCFG0.ACC_BITS.next        = 6'(ACC_BITS);
    hwif_in.HWCFG0.THR_MAX.next         = 4'(THR_MAX);
    hwif_in.HWCFG0.DATA_WORDS.next      = 4'(DATA_W / 32);
    hwif_in.HWCFG1.WMEM_DEPTH.next      = 16'(WMEM_DEPTH);
    hwif_in.HWCFG1.AMEM_DEPTH.next      = 16'(AMEM_DEPTH);
    hwif_in.HWCFG2.TMEM_DEPTH.next      = 16'(TMEM_DEPTH);
    hwif_in.HWCFG2.MAX_CHUNKS.next      = 16'(MAX_CHUNKS);
    hwif_in.STATUS.BUSY.next            = busy;
    hwif_in.STATUS.DONE.next            = done;
    hwif_in.STATUS.ABORTED.next         = aborted;
    hwif_in.STATUS.CHECKING.next        = checking;
    hwif_in.ERROR.BAD_MODE.next         = error[0];
    hwif_in.ERROR.BAD_BITS.next         = error[1];
    hwif_in.ERROR.BAD_SHAPE.next        = error[2];
    hwif_in.ERROR.BAD_ACC_BITS.next     = error[3];
    hwif_in.ERROR.OVERFLOW.next         = error[4];
    hwif_in.ERROR.BAD_OUT_SEL.next      = error[5];
    hwif_in.ERROR.STREAM_SHORT.next     = error[6];
    hwif_in.ERROR.STREAM_LONG.next      = error[7];
    hwif_in.ERROR.BAD_RES_W.next        = error[8];
    hwif_in.CYCLES.CYCLES.next          = cycles;
  end

  bitcycle_engine #(
    .PE(PE), .SIMD(SIMD), .ACC_BITS(ACC_BITS), .DATA_W(DATA_W), .THR_MAX(THR_MAX),
    .WMEM_DEPTH(WMEM_DEPTH), .AMEM_DEPTH(AMEM_DEPTH), .TMEM_DEPTH(TMEM_DEPTH), .MAX_CHUNKS(MAX_CHUNKS),
    .READ_REG(READ_REG != 0), .POP_REG(POP_REG != 0)
  ) u_engine (
    .clk_i,
    .rst_ni,
    .cfg_mode_i       (hwif_out.MODE.MODE.value),
    .cfg_bits_i       (hwif_out.BITS.BITS.value),
    .cfg_m_i          (hwif_out.M.M.value),
    .cfg_k_i          (hwif_out.K.K.value),
    .cfg_n_i          (hwif_out.N.N.value),
    .cfg_acc_bits_i   (hwif_out.ACC_BITS.ACC_BITS.value),
    .cfg_out_sel_i    (hwif_out.OUT_CFG.OUT_SEL.value),
    .cfg_clip_shift_i (hwif_out.OUT_CFG.CLIP_SHIFT.value),
    .cfg_res_w_i      (hwif_out.OUT_CFG.RES_W.value),
    .start_i          (hwif_out.CTRL.START.value),
    .abort_i          (hwif_out.CTRL.ABORT.value),
    .busy_o           (busy),
    .done_o           (done),
    .error_o          (error),
    .cycles_o         (cycles),
    .aborted_o        (aborted),
    .checking_o       (checking),
    .s_axis_tdata, .s_axis_tvalid, .s_axis_tready, .s_axis_tlast,
    .m_axis_tdata, .m_axis_tkeep, .m_axis_tvalid, .m_axis_tready, .m_axis_tlast
  );

  logic unused_tkeep;
  assign unused_tkeep = ^s_axis_tkeep;

endmodule
