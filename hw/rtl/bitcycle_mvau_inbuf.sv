// bitcycle_mvau_inbuf: the input vector buffer of a bitcycle_mvau layer, double-buffered.
//
// An AXI4-Stream slave collects SF beats (one input vector, FINN's folded order) into one bank
// while the layer reads the other bank chunk by chunk (synchronous read, as block RAM does), so
// collecting vector k+1 overlaps computing vector k. A bank is released by the reader with its
// last read; it can be refilled from the next cycle on.
`default_nettype none

module bitcycle_mvau_inbuf #(
  parameter int SF    = 4,    // beats (chunks) per vector
  parameter int WIDTH = 16,   // bits per beat
  localparam int SfW  = (SF > 1) ? $clog2(SF) : 1
) (
  input  wire logic             clk_i,
  input  wire logic             rst_ni,
  // collect side: FINN's folded input stream
  input  wire logic [WIDTH-1:0] s_axis_tdata,
  input  wire logic             s_axis_tvalid,
  output logic                  s_axis_tready,
  // read side
  output logic                  rd_full_o,     // the read bank holds a whole vector
  input  wire logic             rd_en_i,       // read chunk rd_chunk_i of the read bank
  input  wire logic [SfW-1:0]   rd_chunk_i,
  input  wire logic             rd_release_i,  // with the vector's last read: bank free
  output logic [WIDTH-1:0]      rd_data_o      // the chunk, one cycle after rd_en_i
);

  bitcycle_param_check #(.FAIL(SF < 1 || WIDTH < 1),
      .MSG("bitcycle_mvau_inbuf: SF and WIDTH must be >= 1")) u_check_params ();

  logic [WIDTH-1:0] mem_q [2 * (1 << SfW)];   // bank b, chunk c at {b, c}
  logic [WIDTH-1:0] rdata_q;
  logic [1:0]       full_q;
  logic             wbank_q, rbank_q;
  logic [SfW-1:0]   wbeat_q;

  logic wr, wr_last;
  assign s_axis_tready = !full_q[wbank_q];
  assign wr            = s_axis_tvalid && s_axis_tready;
  assign wr_last       = wbeat_q == SfW'(SF - 1);
  assign rd_full_o     = full_q[rbank_q];
  assign rd_data_o     = rdata_q;

  always_ff @(posedge clk_i) begin
    if (wr) mem_q[{wbank_q, wbeat_q}] <= s_axis_tdata;
    if (rd_en_i) rdata_q <= mem_q[{rbank_q, rd_chunk_i}];
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      full_q  <= '0;
      wbank_q <= 1'b0;
      rbank_q <= 1'b0;
      wbeat_q <= '0;
    end else begin
      if (wr) begin
        wbeat_q <= wr_last ? '0 : wbeat_q + 1'b1;
        if (wr_last) begin
          full_q[wbank_q] <= 1'b1;
          wbank_q         <= !wbank_q;
        end
      end
      // a write completes only a bank that is not full, a release frees only a full one:
      // the two never name the same bank in one cycle
      if (rd_release_i && full_q[rbank_q]) begin
        full_q[rbank_q] <= 1'b0;
        rbank_q         <= !rbank_q;
      end
    end
  end

endmodule

`default_nettype wire
