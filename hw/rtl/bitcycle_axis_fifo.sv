// bitcycle_axis_fifo: AXI4-Stream FIFO, between two dataflow layers (the stitched rtlsim's
// stand-in for FINN's StreamingFIFO_rtl: finn-rtllib's fifo.sv does not elaborate in the
// simulator used here, v5.048; hence FINN's port names) and as bitcycle_mvau's output queue.
// TREADY = not full, TVALID = not empty: neither depends on the other side's handshake in the
// same cycle, and TVALID never drops before its handshake.
`default_nettype none

module bitcycle_axis_fifo #(
  parameter int WIDTH = 8,
  parameter int DEPTH = 32,   // power of two, >= 2
  localparam int AW   = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
  input  wire logic             ap_clk,
  input  wire logic             ap_rst_n,
  input  wire logic [WIDTH-1:0] in0_V_TDATA,
  input  wire logic             in0_V_TVALID,
  output logic                  in0_V_TREADY,
  output logic [WIDTH-1:0]      out0_V_TDATA,
  output logic                  out0_V_TVALID,
  input  wire logic             out0_V_TREADY
);

  bitcycle_param_check #(.FAIL(DEPTH < 2 || (DEPTH & (DEPTH - 1)) != 0 || WIDTH < 1),
      .MSG("bitcycle_axis_fifo: DEPTH must be a power of two >= 2 and WIDTH >= 1")) u_check_params ();

  logic [WIDTH-1:0] mem_q [DEPTH];
  logic [AW-1:0]    wptr_q, rptr_q;
  logic [AW:0]      count_q;
  logic             wr, rd;

  assign in0_V_TREADY  = count_q != (AW + 1)'(DEPTH);
  assign out0_V_TVALID = count_q != '0;
  assign out0_V_TDATA  = mem_q[rptr_q];
  assign wr            = in0_V_TVALID && in0_V_TREADY;
  assign rd            = out0_V_TVALID && out0_V_TREADY;

  always_ff @(posedge ap_clk) begin
    if (wr) mem_q[wptr_q] <= in0_V_TDATA;
  end

  always_ff @(posedge ap_clk or negedge ap_rst_n) begin
    if (!ap_rst_n) begin
      wptr_q  <= '0;
      rptr_q  <= '0;
      count_q <= '0;
    end else begin
      if (wr) wptr_q <= wptr_q + 1'b1;
      if (rd) rptr_q <= rptr_q + 1'b1;
      count_q <= count_q + (AW + 1)'(wr) - (AW + 1)'(rd);
    end
  end

endmodule

`default_nettype wire
