// bitcycle_array: the PE x SIMD array of binary x integer cells and its accumulators.
//
// Cell (i, j) holds weight-tile bit i*SIMD + j. Forward lanes are the rows o (sum over j); the
// transposed lanes of backward-data (TRANSPOSE = 1) are the columns o (sum over i). In both
// orientations input k of lane o reads the integer plane bit x[k] and its enable en[k]; only the
// weight bit differs (w[o][k] forward, w[k][o] transposed). So one popcount per lane serves both,
// and each popcount input is one LUT of five signals: the two weight bits, trans, and the two
// per-element hits shared by the whole column of inputs,
//   hit_one[k]  = en[k] & x[k]                 (weight bit 1: counts where x is 1)
//   hit_zero[k] = en[k] & bipolar & ~x[k]      (weight bit 0: XNOR counts x = 0 when bipolar)
// so AND (integer planes) and XNOR (bits = 1, bipolar) need no per-cell mode logic.
//
// Accumulation is positional, not Horner's rule: the plane with index p (MSB first, as the issue
// sequencer walks them) adds (2*pop - n) * c with c = 2^p, or -2^p for a two's-complement MSB
// plane (n: the enabled x ones, or the enabled elements when bipolar). The weight c is one
// multiplier operand shared by every lane, so each lane is a multiply-accumulate that maps to one
// DSP48E1 (A*B with the P register fed back through the post-adder) instead of a 24-bit
// shift-add-subtract in LUTs. The sum is exact: the configuration check refuses any job whose
// result could leave ACC_BITS, so the order of the additions does not matter.
//
// Two stages: the popcounts are registered (BRAM out -> cells -> popcount tree |), then the
// accumulator (| -> DSP), so acc_o holds the value including the beat presented two cycles
// earlier (the engine captures a group two cycles after its last beat).
`default_nettype none

module bitcycle_array #(
  parameter int PE        = 4,
  parameter int SIMD      = 16,
  parameter int ACC_BITS  = 32,
  parameter bit TRANSPOSE = 1'b1,  // also the transposed product (columns as lanes)
  localparam int NumAcc   = (PE > SIMD) ? PE : SIMD,
  localparam int CntW     = $clog2(NumAcc + 1)
) (
  input  wire logic                       clk_i,
  input  wire logic                       valid_i,
  input  wire logic                       first_i,  // first beat of an output group (acc from 0)
  input  wire logic [3:0]                 plane_i,  // bit-plane index p of the beat
  input  wire logic                       msb_i,    // the plane weighs -2^p (two's-complement MSB)
  input  wire logic                       trans_i,
  input  wire logic                       bipolar_i,
  input  wire logic [NumAcc-1:0]          en_i,     // reduction elements inside the length
  input  wire logic [NumAcc-1:0]          x_i,      // the plane-chunk of the integer operand
  input  wire logic [PE*SIMD-1:0]         w_i,      // the binary tile
  output logic [NumAcc*ACC_BITS-1:0]      acc_o     // lane o at [o*ACC_BITS +: ACC_BITS]
);

  bitcycle_param_check #(.FAIL(PE < 1 || SIMD < 1 || ACC_BITS < 2 || ACC_BITS > 48),
      .MSG("bitcycle_array: PE, SIMD >= 1 and ACC_BITS in 2..48 (one DSP48E1 P register)")) u_check_params ();

  localparam int CoefW = 18;  // DSP48E1 B port: +-2^15 for planes 0..15

  logic                     trans;
  logic [NumAcc-1:0]        hit_one, hit_zero;
  logic [CntW-1:0]          pop_x, pop_en, p_sub_q;
  logic                     p_valid_q, p_first_q;
  logic signed [CoefW-1:0]  p_coef_q;

  assign trans    = TRANSPOSE && trans_i;
  assign hit_one  = en_i & x_i;
  assign hit_zero = en_i & ~x_i & {NumAcc{bipolar_i}};
  bitcycle_popcount #(.N(NumAcc)) u_pop_x (.v_i(hit_one), .n_o(pop_x));
  bitcycle_popcount #(.N(NumAcc)) u_pop_en (.v_i(en_i), .n_o(pop_en));

  for (genvar o = 0; o < NumAcc; o++) begin : g_lane
    logic [NumAcc-1:0]          hits;
    logic [CntW-1:0]            pop, pop_q;
    logic signed [CntW+1:0]     plane_sum;
    logic signed [ACC_BITS-1:0] acc_q;
    for (genvar k = 0; k < NumAcc; k++) begin : g_in
      localparam bit HasFwd = (o < PE) && (k < SIMD);
      localparam bit HasTr  = TRANSPOSE && (o < SIMD) && (k < PE);
      if (HasFwd && HasTr) begin : g_both
        assign hits[k] = (trans ? w_i[k*SIMD+o] : w_i[o*SIMD+k]) ? hit_one[k] : hit_zero[k];
      end else if (HasFwd) begin : g_fwd
        assign hits[k] = !trans && (w_i[o*SIMD+k] ? hit_one[k] : hit_zero[k]);
      end else if (HasTr) begin : g_tr
        assign hits[k] = trans && (w_i[k*SIMD+o] ? hit_one[k] : hit_zero[k]);
      end else begin : g_none
        assign hits[k] = 1'b0;
      end
    end
    bitcycle_popcount #(.N(NumAcc)) u_pop (.v_i(hits), .n_o(pop));
    always_ff @(posedge clk_i) pop_q <= pop;
    assign plane_sum = $signed({1'b0, pop_q, 1'b0}) - $signed({2'b0, p_sub_q});
    // datapath: no reset (a group's first beat starts from 0)
    always_ff @(posedge clk_i) begin
      if (p_valid_q) acc_q <= (p_first_q ? ACC_BITS'(0) : acc_q) + ACC_BITS'(plane_sum * p_coef_q);
    end
    assign acc_o[o*ACC_BITS +: ACC_BITS] = acc_q;
  end

  always_ff @(posedge clk_i) begin
    p_valid_q <= valid_i;
    p_first_q <= first_i;
    p_sub_q   <= bipolar_i ? pop_en : pop_x;
    p_coef_q  <= msb_i ? -(CoefW'(1) << plane_i) : (CoefW'(1) << plane_i);
  end

endmodule

`default_nettype wire
