// bitcycle_sumtree: the sum of N unsigned W-bit values, as a balanced tree of two-input adders, so
// the depth grows with log2(N) (each level one carry chain) rather than with N.
`default_nettype none

module bitcycle_sumtree #(
  parameter int  N = 4,
  parameter int  W = 3,
  localparam int SumW = W + $clog2(N)  // N values below 2^W sum below N * 2^W <= 2^SumW
) (
  input  wire logic [N*W-1:0] v_i,     // value i at [i*W +: W]
  output logic [SumW-1:0]     sum_o
);

  bitcycle_param_check #(.FAIL(N < 1 || W < 1), .MSG("bitcycle_sumtree: N, W must be >= 1")) u_check_params ();

  if (N == 1) begin : g_leaf
    assign sum_o = v_i;
  end else begin : g_tree
    localparam int Lo = N / 2;
    localparam int Hi = N - Lo;
    logic [W+$clog2(Lo)-1:0] s_lo;
    logic [W+$clog2(Hi)-1:0] s_hi;
    bitcycle_sumtree #(.N(Lo), .W(W)) u_lo (.v_i(v_i[Lo*W-1:0]), .sum_o(s_lo));
    bitcycle_sumtree #(.N(Hi), .W(W)) u_hi (.v_i(v_i[N*W-1:Lo*W]), .sum_o(s_hi));
    assign sum_o = SumW'(s_lo) + SumW'(s_hi);
  end

endmodule

`default_nettype wire
