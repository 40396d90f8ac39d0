// bitcycle_maxpool: max-pool of ±1 activations (bit 1 = +1) on FINN's stream after a depthwise
// sliding window. FINN's depthwise ConvolutionInputGenerator emits, per output pixel and channel
// fold, the K·K window positions as K2 consecutive beats of PE channels; the max over {-1, +1} is
// the OR of the bits, so K2 beats reduce to one. One input beat per cycle; the output is a
// register, so TVALID never drops and TDATA never changes before its handshake.
`default_nettype none

module bitcycle_maxpool #(
  parameter int PE = 1,     // channels per beat (1 bit each)
  parameter int K2 = 4,     // window positions per output beat (K·K), >= 1
  localparam int CW = (K2 > 1) ? $clog2(K2) : 1
) (
  input  wire logic          ap_clk,
  input  wire logic          ap_rst_n,
  input  wire logic [PE-1:0] in0_V_TDATA,
  input  wire logic          in0_V_TVALID,
  output logic               in0_V_TREADY,
  output logic [PE-1:0]      out0_V_TDATA,
  output logic               out0_V_TVALID,
  input  wire logic          out0_V_TREADY
);

  bitcycle_param_check #(.FAIL(PE < 1 || K2 < 1),
      .MSG("bitcycle_maxpool: PE and K2 (window positions) must be >= 1")) u_check_params ();

  logic [PE-1:0] acc_q, acc_d, out_q, out_d;
  logic [CW-1:0] pos_q, pos_d;
  logic          valid_q, valid_d;
  logic          last, in_fire, out_fire;

  assign last          = pos_q == CW'(K2 - 1);
  // a window's last beat needs the output register free (empty, or emptied this cycle)
  assign in0_V_TREADY  = !last || !valid_q || out0_V_TREADY;
  assign in_fire       = in0_V_TVALID && in0_V_TREADY;
  assign out_fire      = valid_q && out0_V_TREADY;
  assign out0_V_TDATA  = out_q;
  assign out0_V_TVALID = valid_q;

  always_comb begin
    acc_d   = acc_q;
    pos_d   = pos_q;
    out_d   = out_q;
    valid_d = valid_q && !out_fire;
    if (in_fire) begin
      if (last) begin
        out_d   = acc_q | in0_V_TDATA;
        valid_d = 1'b1;
        acc_d   = '0;
        pos_d   = '0;
      end else begin
        acc_d = acc_q | in0_V_TDATA;
        pos_d = pos_q + 1'b1;
      end
    end
  end

  always_ff @(posedge ap_clk or negedge ap_rst_n) begin
    if (!ap_rst_n) begin
      acc_q   <= '0;
      pos_q   <= '0;
      out_q   <= '0;
      valid_q <= 1'b0;
    end else begin
      acc_q   <= acc_d;
      pos_q   <= pos_d;
      out_q   <= out_d;
      valid_q <= valid_d;
    end
  end

endmodule

`default_nettype wire
