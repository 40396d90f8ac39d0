// bitcycle_popcount: number of ones in v_i, as a balanced tree: groups of up to six bits count
// through one LUT6 per result bit (a 64-entry table), and the group counts add in pairs, so the
// depth grows with log2(N) instead of N (a chain of N one-bit additions).
`default_nettype none

module bitcycle_popcount #(
  parameter int  N = 16,
  localparam int W = $clog2(N + 1)
) (
  input  wire logic [N-1:0] v_i,
  output logic [W-1:0]      n_o
);

  bitcycle_param_check #(.FAIL(N < 1), .MSG("bitcycle_popcount: N must be >= 1")) u_check_n ();

  if (N <= 6) begin : g_leaf
    // entry i (3 bits at 3*i) = ones in i
    localparam logic [191:0] Table = 192'hd6cb23b238dab238da8da691b238da8da6918da691691448;
    logic [5:0] idx;
    logic [2:0] cnt;
    assign idx = 6'(v_i);
    assign cnt = Table[3*idx +: 3];
    assign n_o = W'(cnt);
  end else begin : g_tree
    localparam int Lo = ((N / 2 + 5) / 6) * 6 < N ? ((N / 2 + 5) / 6) * 6 : N / 2;
    localparam int Hi = N - Lo;
    logic [$clog2(Lo + 1)-1:0] n_lo;
    logic [$clog2(Hi + 1)-1:0] n_hi;
    bitcycle_popcount #(.N(Lo)) u_lo (.v_i(v_i[Lo-1:0]), .n_o(n_lo));
    bitcycle_popcount #(.N(Hi)) u_hi (.v_i(v_i[N-1:Lo]), .n_o(n_hi));
    assign n_o = W'(n_lo) + W'(n_hi);
  end

endmodule

`default_nettype wire
