// bitcycle_ram: simple dual-port RAM (one write port with per-lane enables, one synchronous read
// port), the shape Yosys/Vivado map to block or distributed RAM. No reset: contents are data.
// RAM_STYLE is the synthesis attribute ram_style ("auto", "block", "distributed"): "block" where
// the tools would pick LUTRAM for a wide, shallow memory (the threshold groups) that costs
// hundreds of LUTs plus its output register as distributed RAM but a few of the device's mostly
// idle BRAM36. OUT_REG = 1 adds the block RAM's own output register (DOB_REG: one more cycle of
// latency, no fabric) so the 2.5 ns clock-to-out of the array read does not start a logic path.
// re_i low holds the read pipeline (the block RAM's read enable and output-register CE): a
// stalled consumer keeps the word it was given.
module bitcycle_ram #(
  parameter int LANE_W = 32,
  parameter int LANES  = 1,
  parameter int DEPTH  = 64,
  /* verilator lint_off UNUSEDPARAM */
  parameter     RAM_STYLE = "auto",  // read by synthesis only (the attribute)
  /* verilator lint_on UNUSEDPARAM */
  parameter bit OUT_REG = 1'b0,
  localparam int AddrW = (DEPTH > 1) ? $clog2(DEPTH) : 1,
  localparam int Width = LANE_W * LANES
) (
  input  logic              clk_i,
  input  logic              we_i,
  input  logic [AddrW-1:0]  waddr_i,
  input  logic [LANES-1:0]  wlane_i,
  input  logic [LANE_W-1:0] wdata_i,
  input  logic              re_i,
  input  logic [AddrW-1:0]  raddr_i,
  output logic [Width-1:0]  rdata_o
);

  bitcycle_param_check #(.FAIL(LANE_W < 1 || LANES < 1 || DEPTH < 1),
      .MSG("bitcycle_ram: LANE_W, LANES and DEPTH must be >= 1")) u_check_params ();

  (* ram_style = RAM_STYLE *) logic [Width-1:0] mem_q [DEPTH];
  logic [Width-1:0] rdata_q;

  always_ff @(posedge clk_i) begin
    for (int l = 0; l < LANES; l++) begin
      if (we_i && wlane_i[l]) mem_q[waddr_i][l*LANE_W +: LANE_W] <= wdata_i;
    end
    if (re_i) rdata_q <= mem_q[raddr_i];
  end

  if (OUT_REG) begin : g_out_reg
    logic [Width-1:0] rdata2_q;
    always_ff @(posedge clk_i) if (re_i) rdata2_q <= rdata_q;
    assign rdata_o = rdata2_q;
  end else begin : g_no_out_reg
    assign rdata_o = rdata_q;
  end

endmodule
