// bitserial_mac: one row of SIMD lanes of BitCycle's bit-serial MAC array.
//
// Every accepted beat carries SIMD binary weights (1 = +1, 0 = -1) and one bit-plane of SIMD
// integer operands. The row walks the planes of a chunk LSB first, `bits_i` planes per chunk,
// and a dot product is any number of chunks, the last one flagged by `last_i`:
//
//   plane sum s_p = sum over enabled lanes of (w ? +x_p : -x_p) = 2*popcount(w & x_p & en) - popcount(x_p & en)
//   bits >= 2 : acc += s_p << p, except the MSB plane of two's complement: acc -= s_p << (bits-1)
//   bits == 1 : the operand is bipolar (plane bit 1 = +1, 0 = -1):
//               acc += 2*popcount(~(w ^ x) & en) - popcount(en)          (XNOR-popcount)
//
// So a dot product of K values costs bits * ceil(K/SIMD) beats: cost follows the run-time bit
// width. `done_o` pulses for one cycle with the result, saturated to OUT_BITS (the golden
// model's `acc_bits`). `bits_i` must stay constant over a dot product.
module bitserial_mac #(
  parameter int SIMD     = 16,
  parameter int MAX_BITS = 16,
  parameter int ACC_BITS = 32,
  parameter int OUT_BITS = ACC_BITS,
  localparam int BitsW   = $clog2(MAX_BITS + 1)
) (
  input  logic                       clk_i,
  input  logic                       rst_ni,
  input  logic [BitsW-1:0]           bits_i,
  input  logic                       valid_i,
  input  logic [SIMD-1:0]            weight_i,
  input  logic [SIMD-1:0]            plane_i,
  input  logic [SIMD-1:0]            lane_en_i,
  input  logic                       last_i,
  output logic                       done_o,
  output logic signed [OUT_BITS-1:0] result_o
);

  // Elaboration-time parameter checks.
  bitcycle_param_check #(.FAIL(SIMD < 1),
      .MSG("bitserial_mac: SIMD must be >= 1")) u_check_simd ();
  bitcycle_param_check #(.FAIL(MAX_BITS < 1 || MAX_BITS > 16),
      .MSG("bitserial_mac: MAX_BITS must be in 1..16")) u_check_bits ();
  bitcycle_param_check #(.FAIL(OUT_BITS < 2 || OUT_BITS > ACC_BITS || ACC_BITS > 62),
      .MSG("bitserial_mac: need 2 <= OUT_BITS <= ACC_BITS <= 62")) u_check_acc ();

  localparam int CntW = $clog2(SIMD + 1);
  localparam int PlaneW = $clog2(MAX_BITS);
  localparam logic signed [ACC_BITS-1:0] OutMax = ACC_BITS'((64'sd1 <<< (OUT_BITS - 1)) - 1);
  localparam logic signed [ACC_BITS-1:0] OutMin = ACC_BITS'(-(64'sd1 <<< (OUT_BITS - 1)));

  logic [PlaneW-1:0]          plane_q, plane_d;
  logic                       first_q, first_d;  // next beat starts a new dot product
  logic signed [ACC_BITS-1:0] acc_q, acc_d;
  logic                       done_q, done_d;

  logic [CntW-1:0]            pop_match, pop_en, pop_x;
  logic signed [ACC_BITS-1:0] plane_sum, term;
  logic                       msb_plane, bipolar;

  // bipolar: XNOR match; integer plane: weight-positive AND plane bit (1-bit wide, so that `~`
  // cannot set bits above bit 0 inside the wider popcount sum)
  logic [SIMD-1:0] lane_hit;
  assign lane_hit = lane_en_i & (bipolar ? ~(weight_i ^ plane_i) : (weight_i & plane_i));

  // Popcounts of one beat.
  always_comb begin
    pop_match = '0;
    pop_en    = '0;
    pop_x     = '0;
    for (int i = 0; i < SIMD; i++) begin
      pop_en    = pop_en + CntW'(lane_en_i[i]);
      pop_x     = pop_x + CntW'(lane_en_i[i] & plane_i[i]);
      pop_match = pop_match + CntW'(lane_hit[i]);
    end
  end

  assign bipolar   = (bits_i == BitsW'(1));
  assign msb_plane = ({{(32-PlaneW){1'b0}}, plane_q} == 32'(bits_i) - 1);

  // Plane sum, shifted to its weight; the MSB plane of a two's-complement operand subtracts.
  // (No variable is read after being written here: Icarus re-triggers such always_comb blocks.)
  always_comb begin
    plane_sum = bipolar ? (ACC_BITS'(pop_match) <<< 1) - ACC_BITS'(pop_en)
                        : (ACC_BITS'(pop_match) <<< 1) - ACC_BITS'(pop_x);
    term      = (msb_plane && !bipolar) ? -(plane_sum <<< plane_q) : (plane_sum <<< plane_q);
  end

  always_comb begin
    plane_d = plane_q;
    first_d = first_q;
    acc_d   = acc_q;
    done_d  = 1'b0;
    if (valid_i) begin
      acc_d   = (first_q ? '0 : acc_q) + term;
      first_d = 1'b0;
      if (msb_plane) begin
        plane_d = '0;
        if (last_i) begin
          done_d  = 1'b1;
          first_d = 1'b1;
        end
      end else begin
        plane_d = plane_q + 1'b1;
      end
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      plane_q <= '0;
      first_q <= 1'b1;
      acc_q   <= '0;
      done_q  <= 1'b0;
    end else begin
      plane_q <= plane_d;
      first_q <= first_d;
      acc_q   <= acc_d;
      done_q  <= done_d;
    end
  end

  // Output saturation to OUT_BITS.
  always_comb begin
    if (acc_q > OutMax)      result_o = OUT_BITS'(OutMax);
    else if (acc_q < OutMin) result_o = OUT_BITS'(OutMin);
    else                     result_o = OUT_BITS'(acc_q);
  end
  assign done_o = done_q;

endmodule
