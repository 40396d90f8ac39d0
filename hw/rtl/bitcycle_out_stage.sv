// bitcycle_out_stage: the output stage. A holding register takes one output group from the array
// (capture_i); a serializer then moves one value per cycle through a three-stage pipeline --
// select, saturate to acc_bits, the selected function (raw / 8-bit clip / thresholds reached) --
// into the int32 lanes of a stream word.
// A vector's last word is padded with zero lanes; TKEEP drops them on the packet's last beat.
//
// Closing a cut job (close_i): the beat on offer stays valid until taken; if the packet is open
// and that beat is not its last, one marker beat follows (lane 0 = 0, TKEEP lane 0, TLAST).
`default_nettype none

module bitcycle_out_stage #(
  parameter int LANES    = 16,   // values per output group (max(PE, SIMD))
  parameter int ACC_BITS = 32,
  parameter int DATA_W   = 32,
  parameter int THR_MAX  = 1,
  parameter int THR_LANES = LANES,  // values with thresholds (forward: PE)
  localparam int CntW    = $clog2(LANES + 1),
  localparam int ThrBits = THR_LANES * THR_MAX * 32
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,
  input  wire logic                      start_run_i,  // a job starts (the last packet is closed)
  input  wire logic                      stop_i,       // abort or cut: drop the group in hand
  input  wire logic                      close_i,      // a compute job is cut: close its packet
  input  wire logic [5:0]                acc_bits_i,
  input  wire logic [1:0]                out_sel_i,
  input  wire logic [4:0]                clip_shift_i,
  // one output group from the array
  input  wire logic                      capture_i,
  input  wire logic [LANES*ACC_BITS-1:0] acc_i,
  input  wire logic                      thr_capture_i, // the group's thresholds (a cycle before)
  input  wire logic [ThrBits-1:0]        thr_i,
  input  wire logic [CntW-1:0]           cnt_i,        // values in the group
  input  wire logic                      vec_last_i,   // the group ends a vector
  input  wire logic                      job_last_i,   // ... and the job
  output logic                           hold_free_o,
  output logic                           done_o,       // the packet's last beat was taken
  // the output stream
  output logic [DATA_W-1:0]              m_data_o,
  output logic [DATA_W/32-1:0]           m_keep_o,     // per int32 lane
  output logic                           m_valid_o,
  output logic                           m_last_o,
  input  wire logic                      m_ready_i
);

  /* verilator lint_off UNUSEDPARAM */
  `BITCYCLE_CODES
  /* verilator lint_on UNUSEDPARAM */

  localparam int OutLanes = DATA_W / 32;
  localparam int IdxW     = (LANES > 1) ? $clog2(LANES) : 1;
  localparam int PackW    = (OutLanes > 1) ? $clog2(OutLanes) : 1;

  logic                        hold_valid_q, hold_valid_d;
  logic signed [ACC_BITS-1:0]  hold_q [LANES];
  logic [ThrBits-1:0]          hold_thr_q;
  logic [CntW-1:0]             hold_cnt_q;
  logic                        hold_vec_last_q, hold_job_last_q;
  logic                        m_valid_q, m_valid_d, m_last_q, m_last_d, marker_q, marker_d, done_q, done_d;
  logic [DATA_W-1:0]           m_data_q, m_data_d, pack_q, pack_d, pack_next;
  logic [OutLanes-1:0]         m_keep_q, m_keep_d;
  logic [PackW-1:0]            pack_cnt_q, pack_cnt_d;
  logic [IdxW-1:0]             idx_q, idx_d;
  logic                        adv, step, grp_end, emit;

  // The value pipeline, one value per cycle, all stages stalled together while the beat on offer
  // waits (adv low): a select a (hold register lane idx), b saturate, c function and packing.
  // Each stage carries the value's lane in the word, whether it completes the word (emit) and
  // whether that word ends the packet.
  logic                        a_valid_q, b_valid_q;
  logic [PackW-1:0]            a_pos_q, b_pos_q;
  logic                        a_emit_q, b_emit_q, a_last_q, b_last_q;
  logic signed [ACC_BITS-1:0]  a_raw_q, b_sat_q, sat;
  logic [THR_MAX*32-1:0]       a_thr_q, b_thr_q, thr_sel;
  logic signed [ACC_BITS-1:0]  sat_hi_q, sat_lo_q, shifted;
  logic signed [31:0]          value;
  logic [3:0]                  thr_count;

  assign adv     = !m_valid_q || m_ready_i;
  assign step    = hold_valid_q && adv && !stop_i;
  assign grp_end = (32'(idx_q) == 32'(hold_cnt_q) - 1);
  assign emit    = (32'(pack_cnt_q) == OutLanes - 1) || (grp_end && hold_vec_last_q);

  function automatic logic [3:0] thresholds_reached(input logic signed [31:0] v,
                                                    input logic [THR_MAX*32-1:0] thr);
    logic [3:0] n;
    n = '0;
    for (int t = 0; t < THR_MAX; t++) n = n + 4'(v >= $signed(thr[t*32 +: 32]));
    thresholds_reached = n;
  endfunction

  always_comb begin
    thr_sel = '0;
    for (int l = 0; l < THR_LANES; l++) if (32'(idx_q) == l) thr_sel = hold_thr_q[l*THR_MAX*32 +: THR_MAX*32];
  end

  // saturation bounds: constant during a job (acc_bits is latched at start), so registered
  logic signed [ACC_BITS-1:0] sat_hi;
  assign sat_hi = ACC_BITS'((48'sd1 <<< (acc_bits_i - 1'b1)) - 48'sd1);
  always_ff @(posedge clk_i) begin
    sat_hi_q <= sat_hi;
    sat_lo_q <= ~sat_hi;
  end

  assign sat       = (a_raw_q > sat_hi_q) ? sat_hi_q : ((a_raw_q < sat_lo_q) ? sat_lo_q : a_raw_q);
  assign shifted   = b_sat_q >>> clip_shift_i;
  assign thr_count = thresholds_reached(32'(b_sat_q), b_thr_q);

  always_comb begin
    unique case (out_sel_i)
      OutClip8:     value = (shifted > 127) ? 32'sd127 : ((shifted < -128) ? -32'sd128 : 32'(shifted));
      OutThreshold: value = 32'(thr_count);
      OutRaw:       value = 32'(b_sat_q);
      default:      value = 32'(b_sat_q);  // reserved code: refused at start (ErrBadOutSel)
    endcase
  end

  for (genvar l = 0; l < OutLanes; l++) begin : g_pack
    assign pack_next[l*32 +: 32] = (32'(b_pos_q) == l) ? value : pack_q[l*32 +: 32];
  end

  always_comb begin
    hold_valid_d = hold_valid_q;
    idx_d        = idx_q;
    pack_d       = pack_q;
    pack_cnt_d   = pack_cnt_q;
    m_valid_d    = m_valid_q;
    m_data_d     = m_data_q;
    m_last_d     = m_last_q;
    m_keep_d     = m_keep_q;
    marker_d     = marker_q;
    done_d       = done_q;
    if (m_valid_q && m_ready_i) begin
      m_valid_d = 1'b0;
      if (m_last_q) done_d = 1'b1;
    end
    if (step) begin
      pack_cnt_d = emit ? '0 : pack_cnt_q + 1'b1;
      idx_d      = grp_end ? '0 : idx_q + 1'b1;
      if (grp_end) hold_valid_d = 1'b0;
    end
    if (adv && b_valid_q) begin  // stage c: the value into its lane; a full word out
      pack_d = b_emit_q ? '0 : pack_next;
      if (b_emit_q) begin
        m_valid_d = 1'b1;
        m_data_d  = pack_next;
        m_last_d  = b_last_q;
        for (int l = 0; l < OutLanes; l++) m_keep_d[l] = !b_last_q || (l <= 32'(b_pos_q));
      end
    end
    if (capture_i) hold_valid_d = 1'b1;  // never while full (hold_free_o)
    if (close_i && !done_q && !(m_valid_q && m_last_q)) marker_d = 1'b1;
    if (marker_q && (!m_valid_q || m_ready_i)) begin
      marker_d  = 1'b0;
      m_valid_d = 1'b1;
      m_data_d  = '0;
      m_last_d  = 1'b1;
      m_keep_d  = OutLanes'(1);
    end
    if (stop_i || start_run_i) begin
      hold_valid_d = 1'b0;
      idx_d        = '0;
      pack_d       = '0;
      pack_cnt_d   = '0;
    end
    if (start_run_i) done_d = 1'b0;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      hold_valid_q <= 1'b0;
      idx_q        <= '0;
      pack_cnt_q   <= '0;
      a_valid_q    <= 1'b0;
      b_valid_q    <= 1'b0;
      m_valid_q    <= 1'b0;
      m_last_q     <= 1'b0;
      m_keep_q     <= '1;
      marker_q     <= 1'b0;
      done_q       <= 1'b0;
    end else begin
      hold_valid_q <= hold_valid_d;
      idx_q        <= idx_d;
      pack_cnt_q   <= pack_cnt_d;
      if (stop_i || start_run_i) begin
        a_valid_q <= 1'b0;
        b_valid_q <= 1'b0;
      end else if (adv) begin
        a_valid_q <= step;
        b_valid_q <= a_valid_q;
      end
      m_valid_q    <= m_valid_d;
      m_last_q     <= m_last_d;
      m_keep_q     <= m_keep_d;
      marker_q     <= marker_d;
      done_q       <= done_d;
    end
  end

  // datapath registers: no reset
  always_ff @(posedge clk_i) begin
    pack_q   <= pack_d;
    m_data_q <= m_data_d;
    if (adv) begin
      a_raw_q  <= hold_q[idx_q];
      a_thr_q  <= thr_sel;
      a_pos_q  <= pack_cnt_q;
      a_emit_q <= emit;
      a_last_q <= grp_end && hold_job_last_q;
      b_sat_q  <= sat;
      b_thr_q  <= a_thr_q;
      b_pos_q  <= a_pos_q;
      b_emit_q <= a_emit_q;
      b_last_q <= a_last_q;
    end
    if (thr_capture_i) hold_thr_q <= thr_i;  // the hold is free from this group's last issue on
    if (capture_i) begin
      for (int o = 0; o < LANES; o++) hold_q[o] <= acc_i[o*ACC_BITS +: ACC_BITS];
      hold_cnt_q      <= cnt_i;
      hold_vec_last_q <= vec_last_i;
      hold_job_last_q <= job_last_i;
    end
  end

  assign hold_free_o = !hold_valid_q;
  assign done_o      = done_q;
  assign m_data_o    = m_data_q;
  assign m_keep_o    = m_keep_q;
  assign m_valid_o   = m_valid_q;
  assign m_last_o    = m_last_q;

endmodule

`default_nettype wire
