// bitcycle_dotcount: number of matching products in one chunk, n = Σ_j p_j with
//   p_j = ~(w_j ^ x_j)  (XNOR, bipolar ±1 codes)  when xnor_i, or
//   p_j =   w_j & x_j   (AND, one bit plane of an integer)  otherwise.
// Products are counted in leaves that each fit one LUT6 per count bit: three products (six
// signals) when the mode is fixed at build time (MODE = 1 XNOR, 2 AND), two products plus xnor_i
// when it is chosen at run time (MODE = 0). So a product never takes a LUT of its own, which is
// what product-then-popcount costs. Leaf counts add in pairs, level by level (a balanced tree,
// depth log2 of the leaves). Written as loops, not recursion: Verilator cannot build a recursive
// module as the top level of a testbench.
`default_nettype none

module bitcycle_dotcount #(
  parameter int  N    = 16,
  parameter int  MODE = 0,     // 0: xnor_i chooses per cycle; 1: XNOR only; 2: AND only
  localparam int W    = $clog2(N + 1)
) (
  input  wire logic [N-1:0] w_i,
  input  wire logic [N-1:0] x_i,
  input  wire logic         xnor_i,
  output logic [W-1:0]      n_o
);
  localparam int G      = (MODE == 0) ? 2 : 3;        // products per leaf: six LUT inputs
  localparam int Leaves = (N + G - 1) / G;
  localparam int Levels = (Leaves > 1) ? $clog2(Leaves) : 0;

  bitcycle_param_check #(.FAIL(N < 1 || MODE < 0 || MODE > 2),
      .MSG("bitcycle_dotcount: need N >= 1 and MODE in 0..2")) u_check ();

  logic [N-1:0] p;
  always_comb begin
    for (int j = 0; j < N; j++) begin
      if (MODE == 1)      p[j] = ~(w_i[j] ^ x_i[j]);
      else if (MODE == 2) p[j] = w_i[j] & x_i[j];
      else                p[j] = xnor_i ? ~(w_i[j] ^ x_i[j]) : (w_i[j] & x_i[j]);
    end
  end

  // node i of level d at sum[(d * Leaves + i) * W +: W]; level d has ceil(Leaves / 2^d) nodes
  // (the upper levels use fewer slots than the leaves: their padding is read by nothing)
  /* verilator lint_off UNUSEDSIGNAL */
  logic [(Levels + 1) * Leaves * W - 1:0] sum;
  /* verilator lint_on UNUSEDSIGNAL */
  for (genvar i = 0; i < Leaves; i++) begin : g_leaf
    localparam int Lo = i * G;
    localparam int Hi = (Lo + G < N) ? Lo + G : N;
    localparam int Lw = $clog2(G + 1);                           // a leaf's count
    logic [Lw-1:0] cnt;
    always_comb begin
      cnt = '0;
      for (int j = Lo; j < Hi; j++) cnt = cnt + Lw'(p[j]);
    end
    assign sum[i * W +: W] = W'(cnt);
  end
  for (genvar d = 0; d < Levels; d++) begin : g_level
    localparam int Nodes = (Leaves + (1 << d) - 1) >> d;          // at level d
    localparam int Cw    = $clog2(G * (1 << (d + 1)) + 1) < W ? $clog2(G * (1 << (d + 1)) + 1) : W;
    for (genvar i = 0; i < (Nodes + 1) / 2; i++) begin : g_node
      localparam int A = (d * Leaves + 2 * i) * W;
      localparam int B = A + W;
      localparam int Y = ((d + 1) * Leaves + i) * W;
      if (2 * i + 1 < Nodes) begin : g_add
        assign sum[Y +: W] = W'(Cw'(sum[A +: W]) + Cw'(sum[B +: W]));
      end else begin : g_pass
        assign sum[Y +: W] = sum[A +: W];
      end
    end
    // the level's unused slots
    if ((Nodes + 1) / 2 < Leaves) begin : g_pad
      assign sum[((d + 1) * Leaves + (Nodes + 1) / 2) * W +: (Leaves - (Nodes + 1) / 2) * W] = '0;
    end
  end
  assign n_o = sum[Levels * Leaves * W +: W];

endmodule

`default_nettype wire
