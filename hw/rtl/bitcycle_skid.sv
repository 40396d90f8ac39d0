// bitcycle_skid: a two-entry skid buffer on a valid/ready stream (verilog-axis axis_register,
// REG_TYPE 2): full throughput, and every output plus s_ready_o comes straight from a flip-flop,
// so no combinational path crosses it in either direction. Once m_valid_o is high it stays high,
// with m_data_o unchanged, until m_ready_i takes the word.
`default_nettype none

module bitcycle_skid #(
  parameter int WIDTH = 32   // payload bits (data, last, keep, ... concatenated)
) (
  input  wire logic             clk_i,
  input  wire logic             rst_ni,
  input  wire logic [WIDTH-1:0] s_data_i,
  input  wire logic             s_valid_i,
  output logic                  s_ready_o,
  output logic [WIDTH-1:0]      m_data_o,
  output logic                  m_valid_o,
  input  wire logic             m_ready_i
);

  bitcycle_param_check #(.FAIL(WIDTH < 1), .MSG("bitcycle_skid: WIDTH must be >= 1")) u_check_width ();

  logic [WIDTH-1:0] out_q, skid_q;       // output register, overflow register (payload: no reset)
  logic             out_valid_q, out_valid_d, skid_valid_q, skid_valid_d, ready_q, ready_d;
  logic             load_out_in, load_out_skid, load_skid;

  always_comb begin
    out_valid_d   = out_valid_q;
    skid_valid_d  = skid_valid_q;
    load_out_in   = 1'b0;
    load_out_skid = 1'b0;
    load_skid     = 1'b0;
    if (ready_q) begin                         // input accepted this cycle if valid
      if (m_ready_i || !out_valid_q) begin     // output free: the word goes straight out
        out_valid_d = s_valid_i;
        load_out_in = 1'b1;
      end else begin                           // output stalled: the word waits in the skid
        skid_valid_d = s_valid_i;
        load_skid    = 1'b1;
      end
    end else if (m_ready_i) begin              // skid full, output taken: skid moves out
      out_valid_d   = skid_valid_q;
      skid_valid_d  = 1'b0;
      load_out_skid = 1'b1;
    end
    ready_d = m_ready_i || (!skid_valid_q && (!out_valid_q || !s_valid_i));
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      out_valid_q  <= 1'b0;
      skid_valid_q <= 1'b0;
      ready_q      <= 1'b0;
    end else begin
      out_valid_q  <= out_valid_d;
      skid_valid_q <= skid_valid_d;
      ready_q      <= ready_d;
    end
  end

  always_ff @(posedge clk_i) begin
    if (load_out_in)   out_q  <= s_data_i;
    if (load_out_skid) out_q  <= skid_q;
    if (load_skid)     skid_q <= s_data_i;
  end

  assign s_ready_o = ready_q;
  assign m_data_o  = out_q;
  assign m_valid_o = out_valid_q;

endmodule

`default_nettype wire
