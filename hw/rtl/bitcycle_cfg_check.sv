// bitcycle_cfg_check: the job's configuration check and geometry, on the configuration latched at
// START (constant for the whole check and job). Errors (ErrBad*, ErrOverflow) end the job before
// any word moves; the geometry (rows, reduction, vectors, groups, chunks, words) steers the input
// FSM, the issue sequencer and the output stage for the whole job.
// Two register stages, so no path runs from the configuration through an adder, a multiplier and a
// compare in one cycle: (1) the ceil divisions and the overflow test, (2) the tile counts and the
// vector words, DSP48E1 products into their P registers. The outputs hold their final values from
// the second clock edge after the inputs change (CheckLat = 2; the engine waits for it).
//
//   forward          rows M over PE, reduction K over SIMD, N vectors, tiles of W row-major
//   backward-data    rows K over SIMD (tile columns), reduction M over PE (tile rows)
//   backward-weight  sign(x) [K, N]: rows K over PE, reduction N over SIMD, M vectors
`default_nettype none

module bitcycle_cfg_check #(
  parameter int PE         = 4,
  parameter int SIMD       = 16,
  parameter int ACC_BITS   = 32,
  parameter int DATA_W     = 32,
  parameter int THR_MAX    = 1,
  parameter int WMEM_DEPTH = 256,
  parameter int AMEM_DEPTH = 256,
  parameter int TMEM_DEPTH = 64,
  parameter int MAX_CHUNKS = 64,
  localparam int DimW      = 16,
  localparam int NumAcc    = (PE > SIMD) ? PE : SIMD,
  localparam int CntW      = $clog2(NumAcc + 1),
  localparam int TileWords = (PE * SIMD + DATA_W - 1) / DATA_W,
  localparam int ThrWords  = (PE * THR_MAX * 32 + DATA_W - 1) / DATA_W,
  localparam int SubW      = (TileWords > ThrWords) ? $clog2(TileWords + 1) : $clog2(ThrWords + 1)
) (
  input  wire logic            clk_i,
  input  wire logic [2:0]      mode_i,
  input  wire logic [4:0]      bits_i,
  input  wire logic [DimW-1:0] m_i,
  input  wire logic [DimW-1:0] k_i,
  input  wire logic [DimW-1:0] n_i,
  input  wire logic [5:0]      acc_bits_i,
  input  wire logic [1:0]      out_sel_i,
  input  wire logic [1:0]      res_w_i,
  output logic [8:0]           err_o,        // Err* bits; stream errors (ErrStream*) always 0 here
  output logic                 is_compute_o, // forward, backward-data or backward-weight
  output logic                 trans_o,      // backward-data: the weight tile read transposed
  output logic                 tiles_in_o,   // the packet starts with tiles (loads, backward-weight)
  output logic [DimW-1:0]      out_rows_o,   // output values per vector
  output logic [DimW-1:0]      red_len_o,    // reduction length
  output logic [DimW-1:0]      n_vec_o,      // vectors
  output logic [DimW:0]        n_out_o,      // output groups per vector
  output logic [DimW:0]        n_red_o,      // chunks per plane
  output logic [DimW:0]        n_cols_o,     // tile columns (row stride of the tile address)
  output logic [CntW-1:0]      lanes_out_o,  // output values per group
  output logic [CntW-1:0]      chunk_o,      // reduction elements per chunk
  output logic [31:0]          load_tiles_o, // tiles (or threshold groups) in the packet
  output logic [SubW-1:0]      load_words_o, // stream words per tile / group
  output logic [20:0]          vec_words_o   // stream words per vector: bits * n_red
);

  /* verilator lint_off UNUSEDPARAM */
  `BITCYCLE_CODES
  /* verilator lint_on UNUSEDPARAM */

  localparam int PeLog   = $clog2(PE);
  localparam int SimdLog = $clog2(SIMD);
  localparam int MaxBits = 16;

  logic            is_fwd, is_bwd_data, is_bwd_weight, is_load_w, is_load_t, is_compute;
  logic [DimW:0]   m_pe, k_pe, k_simd, n_simd;  // ceil divisions (stage 1)
  logic [31:0]     w_tiles, a_tiles;            // tile counts (stage 2)
  logic [20:0]     vec_words;                   // (stage 2)

  assign is_fwd        = (mode_i == ModeForward);
  assign is_bwd_data   = (mode_i == ModeBackwardData);
  assign is_bwd_weight = (mode_i == ModeBackwardWeight);
  assign is_load_w     = (mode_i == ModeLoadWeights);
  assign is_load_t     = (mode_i == ModeLoadThresholds);
  assign is_compute    = is_fwd || is_bwd_data || is_bwd_weight;
  // (datapath registers: no reset; the engine reads the outputs only CheckLat edges after START)
  always_ff @(posedge clk_i) begin
    m_pe      <= ({1'b0, m_i} + (DimW+1)'(PE - 1)) >> PeLog;
    k_pe      <= ({1'b0, k_i} + (DimW+1)'(PE - 1)) >> PeLog;
    k_simd    <= ({1'b0, k_i} + (DimW+1)'(SIMD - 1)) >> SimdLog;
    n_simd    <= ({1'b0, n_i} + (DimW+1)'(SIMD - 1)) >> SimdLog;
    w_tiles   <= 32'(m_pe) * 32'(k_simd);
    a_tiles   <= 32'(k_pe) * 32'(n_simd);
    vec_words <= 21'(bits_i) * 21'(n_red_o);
  end

  always_comb begin
    out_rows_o  = m_i;
    red_len_o   = k_i;
    n_vec_o     = n_i;
    n_out_o     = m_pe;
    n_red_o     = k_simd;
    n_cols_o    = k_simd;
    lanes_out_o = CntW'(PE);
    chunk_o     = CntW'(SIMD);
    if (is_bwd_data) begin
      out_rows_o  = k_i;
      red_len_o   = m_i;
      n_out_o     = k_simd;
      n_red_o     = m_pe;
      lanes_out_o = CntW'(SIMD);
      chunk_o     = CntW'(PE);
    end else if (is_bwd_weight) begin
      out_rows_o = k_i;
      red_len_o  = n_i;
      n_vec_o    = m_i;
      n_out_o    = k_pe;
      n_red_o    = n_simd;
      n_cols_o   = n_simd;
    end
  end

  assign is_compute_o = is_compute;
  assign trans_o      = is_bwd_data;
  assign tiles_in_o   = is_load_w || is_load_t || is_bwd_weight;
  assign load_tiles_o = is_load_t ? 32'(m_pe) : (is_bwd_weight ? a_tiles : w_tiles);
  assign load_words_o = is_load_t ? SubW'(ThrWords) : SubW'(TileWords);
  assign vec_words_o  = vec_words;

  // |sum| <= len * 2^(b-1), b = max(bits, 1) (bipolar: len); partial sums (the planes so far) stay
  // inside that bound. It fits ACC_BITS (<= 2^(ACC_BITS-1) - 1) exactly when len < 2^(ACC_BITS-b):
  // a test of len's bits from ACC_BITS - b up, selected by bits, instead of shifting len by bits - 1
  // and comparing 48 bits (a barrel shifter, the check's deepest path)
  function automatic logic at_least_pow2(input logic [DimW-1:0] v, input int j);  // v >= 2^j
    if (j <= 0)         at_least_pow2 = (v != '0);
    else if (j >= DimW) at_least_pow2 = 1'b0;
    else                at_least_pow2 = ((v >> j) != '0);
  endfunction

  logic [DimW-1:0] red_len;
  logic            too_long_d, too_long, bad_bits, shape_compute, shape_load_w, shape_load_t;
  assign red_len  = is_bwd_data ? m_i : (is_bwd_weight ? n_i : k_i);
  always_comb begin
    too_long_d = at_least_pow2(red_len, ACC_BITS - 1);  // bits <= 1
    for (int b = 2; b <= MaxBits; b++) begin
      if (bits_i == 5'(b)) too_long_d = at_least_pow2(red_len, ACC_BITS - b);
    end
  end
  always_ff @(posedge clk_i) too_long <= too_long_d;
  assign bad_bits = (bits_i < 5'd1) || (bits_i > 5'(MaxBits));
  assign shape_compute = (m_i == '0) || (k_i == '0) || (n_i == '0) ||
                         (n_red_o > (DimW+1)'(MAX_CHUNKS)) ||
                         (!is_bwd_weight && w_tiles > 32'(WMEM_DEPTH)) ||
                         (is_bwd_weight && a_tiles > 32'(AMEM_DEPTH)) ||
                         (is_fwd && out_sel_i == OutThreshold && m_pe > (DimW+1)'(TMEM_DEPTH));
  assign shape_load_w  = (m_i == '0) || (k_i == '0) || (w_tiles > 32'(WMEM_DEPTH));
  assign shape_load_t  = (m_i == '0) || (m_pe > (DimW+1)'(TMEM_DEPTH));
  assign err_o[ErrBadMode]     = (mode_i > ModeLast);
  assign err_o[ErrBadBits]     = is_compute && bad_bits;
  assign err_o[ErrBadAccBits]  = is_compute && ((acc_bits_i < 6'd2) || (acc_bits_i > 6'(ACC_BITS)));
  assign err_o[ErrBadOutSel]   = is_compute && ((out_sel_i == 2'd3) || (out_sel_i == OutThreshold && !is_fwd));
  assign err_o[ErrBadShape]    = (is_compute && shape_compute) || (is_load_w && shape_load_w) ||
                                 (is_load_t && shape_load_t);
  assign err_o[ErrOverflow]    = is_compute && !bad_bits && too_long;
  // RAW leaves saturated to acc_bits: it must fit the field (CLIP8 and THRESHOLD fit 8 bits)
  assign err_o[ErrBadResW]     = is_compute && ((res_w_i == 2'd3) ||
                                 (out_sel_i == OutRaw && res_w_i == ResW16 && acc_bits_i > 6'd16) ||
                                 (out_sel_i == OutRaw && res_w_i == ResW8 && acc_bits_i > 6'd8));
  assign err_o[ErrStreamShort] = 1'b0;  // stream errors arise while running, not at the check
  assign err_o[ErrStreamLong]  = 1'b0;

endmodule

`default_nettype wire
