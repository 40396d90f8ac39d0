// bitcycle_mvau_fifo: a small synchronous FIFO with an AXI4-Stream master side. The writer
// must not write when full (bitcycle_mvau reserves a slot per output beat before computing it).
// TVALID is the not-empty flag, so it never drops before its handshake.
`default_nettype none

module bitcycle_mvau_fifo #(
  parameter int WIDTH = 8,
  parameter int DEPTH = 8,    // power of two, >= 2
  localparam int AW   = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
  input  wire logic             clk_i,
  input  wire logic             rst_ni,
  input  wire logic             wr_i,
  input  wire logic [WIDTH-1:0] wdata_i,
  output logic                  full_o,
  output logic [WIDTH-1:0]      m_axis_tdata,
  output logic                  m_axis_tvalid,
  input  wire logic             m_axis_tready
);

  bitcycle_param_check #(.FAIL(DEPTH < 2 || (DEPTH & (DEPTH - 1)) != 0 || WIDTH < 1),
      .MSG("bitcycle_mvau_fifo: DEPTH must be a power of two >= 2 and WIDTH >= 1")) u_check_params ();

  logic [WIDTH-1:0] mem_q [DEPTH];
  logic [AW-1:0]    wptr_q, rptr_q;
  logic [AW:0]      count_q;

  logic rd;
  assign rd            = m_axis_tvalid && m_axis_tready;
  assign m_axis_tvalid = count_q != '0;
  assign m_axis_tdata  = mem_q[rptr_q];
  assign full_o        = count_q == (AW + 1)'(DEPTH);

  always_ff @(posedge clk_i) begin
    if (wr_i) mem_q[wptr_q] <= wdata_i;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      wptr_q  <= '0;
      rptr_q  <= '0;
      count_q <= '0;
    end else begin
      if (wr_i) wptr_q <= wptr_q + 1'b1;
      if (rd) rptr_q <= rptr_q + 1'b1;
      count_q <= count_q + (AW + 1)'(wr_i) - (AW + 1)'(rd);
    end
  end

endmodule

`default_nettype wire
