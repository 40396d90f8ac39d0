// bitcycle_array: the PE x SIMD array of binary x integer cells and its accumulators.
//
// Cell (i, j) holds weight-tile bit i*SIMD + j. Forward lanes are the rows i (sum over j);
// transposed lanes (TRANSPOSE = 1, backward-data) are the columns j (sum over i). The integer
// plane bit of a cell is x[j] (rows) or x[i] (columns). A cell counts its AND (an integer plane)
// or its XNOR (the bipolar plane, bits = 1). Each lane then takes its popcount p and adds the
// plane's signed contribution 2p - n (n: the lanes' enabled x ones, or enabled lanes when
// bipolar) by Horner's rule, MSB plane first:
//   acc = (first ? 0 : plane_first ? 2*acc : acc) +/- (2p - n)   (- for the MSB plane)
// Two stages: the popcounts are registered (BRAM out -> cells -> popcount tree | -> Horner add),
// so acc_o is the value including the beat presented one cycle earlier (the output stage captures
// it one cycle after a group's last beat).
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
  input  wire logic                       first_i,
  input  wire logic                       plane_first_i,
  input  wire logic                       msb_i,
  input  wire logic                       trans_i,
  input  wire logic                       bipolar_i,
  input  wire logic [NumAcc-1:0]          en_i,     // reduction elements inside the length
  input  wire logic [NumAcc-1:0]          x_i,      // the plane-chunk of the integer operand
  input  wire logic [PE*SIMD-1:0]         w_i,      // the binary tile
  output logic [NumAcc*ACC_BITS-1:0]      acc_o     // lane o at [o*ACC_BITS +: ACC_BITS]
);

  bitcycle_param_check #(.FAIL(PE < 1 || SIMD < 1 || ACC_BITS < 2),
      .MSG("bitcycle_array: PE, SIMD >= 1 and ACC_BITS >= 2")) u_check_params ();

  logic            trans;
  logic [CntW-1:0] pop_x, pop_en, p_sub_q;
  logic            p_valid_q, p_first_q, p_plane_first_q, p_msb_q;
  assign trans = TRANSPOSE && trans_i;
  bitcycle_popcount #(.N(NumAcc)) u_pop_x (.v_i(en_i & x_i), .n_o(pop_x));
  bitcycle_popcount #(.N(NumAcc)) u_pop_en (.v_i(en_i), .n_o(pop_en));

  logic [PE*SIMD-1:0] hit;
  for (genvar i = 0; i < PE; i++) begin : g_row
    for (genvar j = 0; j < SIMD; j++) begin : g_col
      logic xbit, en;
      assign xbit = trans ? x_i[i] : x_i[j];
      assign en   = trans ? en_i[i] : en_i[j];
      assign hit[i*SIMD+j] = en & (bipolar_i ? ~(w_i[i*SIMD+j] ^ xbit) : (w_i[i*SIMD+j] & xbit));
    end
  end

  logic signed [ACC_BITS-1:0] acc_q [NumAcc];
  logic [NumAcc*ACC_BITS-1:0] acc_d;

  for (genvar o = 0; o < NumAcc; o++) begin : g_lane
    logic [NumAcc-1:0]          row_hits, col_hits;
    logic [CntW-1:0]            pop;
    logic signed [ACC_BITS-1:0] base, plane_sum;
    if (o < PE) begin : g_has_row
      assign row_hits = NumAcc'(hit[o*SIMD +: SIMD]);
    end else begin : g_no_row
      assign row_hits = '0;
    end
    for (genvar i = 0; i < NumAcc; i++) begin : g_col_bit
      if (TRANSPOSE && o < SIMD && i < PE) begin : g_in
        assign col_hits[i] = hit[i*SIMD+o];
      end else begin : g_out
        assign col_hits[i] = 1'b0;
      end
    end
    logic [CntW-1:0] pop_q;
    bitcycle_popcount #(.N(NumAcc)) u_pop (.v_i(trans ? col_hits : row_hits), .n_o(pop));
    always_ff @(posedge clk_i) pop_q <= pop;
    assign base      = p_first_q ? '0 : (p_plane_first_q ? (acc_q[o] <<< 1) : acc_q[o]);
    assign plane_sum = (ACC_BITS'(pop_q) <<< 1) - ACC_BITS'(p_sub_q);
    assign acc_d[o*ACC_BITS +: ACC_BITS] = p_valid_q ? (p_msb_q ? base - plane_sum : base + plane_sum) : acc_q[o];
  end

  // datapath: no reset (a group's first beat starts from 0; p_valid_q settles with the first beat)
  always_ff @(posedge clk_i) begin
    p_valid_q       <= valid_i;
    p_first_q       <= first_i;
    p_plane_first_q <= plane_first_i;
    p_msb_q         <= msb_i;
    p_sub_q         <= bipolar_i ? pop_en : pop_x;
    for (int o = 0; o < NumAcc; o++) acc_q[o] <= acc_d[o*ACC_BITS +: ACC_BITS];
  end

  assign acc_o = acc_d;

endmodule

`default_nettype wire
