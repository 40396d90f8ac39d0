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
// plane (n: the enabled x ones, or the enabled elements when bipolar). Both terms are split off:
// each lane accumulates 2*pop*c, and one more accumulator, shared by all lanes, accumulates n*c
// (off_o); a lane's result is acc - off, taken by the output stage on the few values of a beat
// rather than on every lane. Each accumulator is a multiply-accumulate with the shared weight c as
// one operand: one DSP48E1 with its A/B and P registers (AREG/BREG, PREG, Z = P or 0 by OPMODE), so
// no 24-bit shift-add-subtract sits in LUTs and no fabric path enters the multiplier.
// The sums are exact: the configuration check refuses any job whose result could leave ACC_BITS,
// and acc - off modulo 2^ACC_BITS is then the result whatever the order of the additions.
//
// Two stages: popcounts registered (the DSP's A/B registers: block RAM out -> cells -> popcount
// tree |), then the multiply-accumulate (P). POP_REG = 1 adds a third, in front: the popcount
// tree is cut after its leaves (the six-input group counts, one LUT6 per bit), so neither the
// cells with the leaves nor the adder tree into the DSP is longer than a few LUTs. acc_o/off_o
// hold the values including the beat presented Lat = 2 + POP_REG cycles earlier. stall_i holds
// every stage (the DSP's CE pins): no beat moves or adds; first_o says the beat at the popcount
// registers (the next to add) restarts the accumulators.
`default_nettype none

module bitcycle_array #(
  parameter int PE        = 4,
  parameter int SIMD      = 16,
  parameter int ACC_BITS  = 32,
  parameter bit TRANSPOSE = 1'b1,  // also the transposed product (columns as lanes)
  parameter bit POP_REG   = 1'b0,  // a register after the popcount leaves (one more stage)
  localparam int NumAcc   = (PE > SIMD) ? PE : SIMD,
  localparam int CntW     = $clog2(NumAcc + 1),
  localparam int Groups   = (NumAcc + 5) / 6  // popcount leaves per lane (six inputs each)
) (
  input  wire logic                       clk_i,
  input  wire logic                       valid_i,
  input  wire logic                       stall_i,  // hold the beat at the popcount registers
  input  wire logic                       first_i,  // first beat of an output group (acc from 0)
  input  wire logic [3:0]                 plane_i,  // bit-plane index p of the beat
  input  wire logic                       msb_i,    // the plane weighs -2^p (two's-complement MSB)
  input  wire logic                       trans_i,
  input  wire logic                       bipolar_i,
  input  wire logic [NumAcc-1:0]          en_i,     // reduction elements inside the length
  input  wire logic [NumAcc-1:0]          x_i,      // the plane-chunk of the integer operand
  input  wire logic [PE*SIMD-1:0]         w_i,      // the binary tile
  output logic [NumAcc*ACC_BITS-1:0]      acc_o,    // lane o at [o*ACC_BITS +: ACC_BITS]: sum 2*pop*c
  output logic [ACC_BITS-1:0]             off_o,    // shared: sum n*c (lane o's result: acc - off)
  output logic                            first_o   // a group's first beat at the popcount registers
);

  bitcycle_param_check #(.FAIL(PE < 1 || SIMD < 1 || ACC_BITS < 2 || ACC_BITS > 48),
      .MSG("bitcycle_array: PE, SIMD >= 1 and ACC_BITS in 2..48 (one DSP48E1 P register)")) u_check_params ();

  localparam int CoefW = 18;          // DSP48E1 B port: +-2^16 (the lanes' 2*2^15) fits

  logic                    trans;
  logic [NumAcc-1:0]       hit_one, hit_zero;
  logic                    l_valid, l_first, l_msb;  // the beat at the leaf counts
  logic [3:0]              l_plane;
  logic                    p_valid_q, p_first_q;
  logic signed [CoefW-1:0] coef_q, coef2_q;  // c and 2c

  assign trans    = TRANSPOSE && trans_i;
  assign hit_one  = en_i & x_i;
  assign hit_zero = en_i & ~x_i & {NumAcc{bipolar_i}};

  // lanes 0..NumAcc-1 count their inputs; lane NumAcc is the shared offset (n: the enabled
  // elements when bipolar, else the enabled ones of x)
  for (genvar o = 0; o <= NumAcc; o++) begin : g_lane
    logic [NumAcc-1:0]          hits;
    logic [3*Groups-1:0]        leaf, leaf_l;  // group counts, at the leaves / after POP_REG
    logic [3+$clog2(Groups)-1:0] sum;
    logic [CntW-1:0]            pop_q;
    logic signed [CoefW-1:0]    coef;
    logic signed [ACC_BITS-1:0] acc_q;
    if (o < NumAcc) begin : g_count
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
    end else begin : g_offset
      assign hits = bipolar_i ? en_i : hit_one;
    end
    for (genvar g = 0; g < Groups; g++) begin : g_leaf
      localparam int Size = (NumAcc - 6 * g < 6) ? NumAcc - 6 * g : 6;
      logic [$clog2(Size + 1)-1:0] n;
      bitcycle_popcount #(.N(Size)) u_leaf (.v_i(hits[6*g +: Size]), .n_o(n));
      assign leaf[3*g +: 3] = 3'(n);
    end
    if (POP_REG) begin : g_leaf_reg
      always_ff @(posedge clk_i) if (!stall_i) leaf_l <= leaf;
    end else begin : g_leaf_comb
      assign leaf_l = leaf;
    end
    bitcycle_sumtree #(.N(Groups), .W(3)) u_sum (.v_i(leaf_l), .sum_o(sum));
    // the lanes' factor 2 rides in the coefficient: a shift between the multiplier and the
    // accumulator would keep Yosys from using the DSP's post-adder (measured: the sums go to LUTs)
    assign coef = (o < NumAcc) ? coef2_q : coef_q;
    // datapath: no reset (a group's first beat starts from 0)
    always_ff @(posedge clk_i) begin
      if (!stall_i) pop_q <= CntW'(sum);
      if (p_valid_q && !stall_i) acc_q <= (p_first_q ? ACC_BITS'(0) : acc_q) + ACC_BITS'($signed({1'b0, pop_q}) * coef);
    end
    if (o < NumAcc) begin : g_acc_out
      assign acc_o[o*ACC_BITS +: ACC_BITS] = acc_q;
    end else begin : g_off_out
      assign off_o = acc_q;
    end
  end

  if (POP_REG) begin : g_ctl_reg
    always_ff @(posedge clk_i) begin
      if (!stall_i) {l_valid, l_first, l_msb, l_plane} <= {valid_i, first_i, msb_i, plane_i};
    end
  end else begin : g_ctl_comb
    assign {l_valid, l_first, l_msb, l_plane} = {valid_i, first_i, msb_i, plane_i};
  end
  always_ff @(posedge clk_i) begin
    if (!stall_i) begin
      p_valid_q <= l_valid;
      p_first_q <= l_first;
      coef_q    <= l_msb ? -(CoefW'(1) << l_plane) : (CoefW'(1) << l_plane);
      coef2_q   <= l_msb ? -(CoefW'(2) << l_plane) : (CoefW'(2) << l_plane);
    end
  end
  assign first_o = p_valid_q && p_first_q;

endmodule

`default_nettype wire
