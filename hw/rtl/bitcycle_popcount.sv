// bitcycle_popcount: number of ones in v_i. Groups of up to six bits count through one LUT6 per
// result bit (a 64-entry table, the leaf); the group counts add in a balanced tree
// (bitcycle_sumtree), so the depth grows with log2(N) instead of N (a chain of N one-bit additions).
// (bitcycle_array instantiates it per group of six, to register the group counts.)
`default_nettype none

module bitcycle_popcount #(
  parameter int  N = 16,
  localparam int W = $clog2(N + 1)
) (
  input  wire logic [N-1:0] v_i,
  output logic [W-1:0]      n_o
);

  bitcycle_param_check #(.FAIL(N < 1), .MSG("bitcycle_popcount: N must be >= 1")) u_check_n ();

  localparam int Groups = (N + 5) / 6;
  // entry i (3 bits at 3*i) = ones in i
  localparam logic [191:0] Table = 192'hd6cb23b238dab238da8da691b238da8da6918da691691448;

  logic [Groups*3-1:0]         counts;
  logic [3+$clog2(Groups)-1:0] sum;
  for (genvar g = 0; g < Groups; g++) begin : g_leaf
    localparam int Size = (N - 6 * g < 6) ? N - 6 * g : 6;
    logic [5:0] idx;
    assign idx = 6'(v_i[6*g +: Size]);
    assign counts[3*g +: 3] = Table[3*idx +: 3];
  end
  bitcycle_sumtree #(.N(Groups), .W(3)) u_sum (.v_i(counts), .sum_o(sum));
  assign n_o = W'(sum);

endmodule

`default_nettype wire
