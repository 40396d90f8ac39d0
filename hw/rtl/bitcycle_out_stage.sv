// bitcycle_out_stage: the output stage. A holding register takes one output group from the array
// (grp_valid_i/grp_ready_o: the group is captured when both are high) and the array's shared term off_i, subtracted from each value as it is taken (one
// subtractor per value of a beat instead of one per lane); a serializer then moves one beat's
// worth of values per cycle -- DATA_W/RES_W, with RES_W (32, 16 or 8 bits per result) a run-time register -- through a four-stage pipeline (take,
// saturate to acc_bits, the selected function: raw / 8-bit clip / thresholds reached, packing)
// into the RES_W-bit fields of a stream word. Value j of a step is hold lane idx + j with idx a
// multiple of the values per beat, so lane j's multiplexer has only LANES/2^ceil(log2(j+1))
// inputs. RAW results are saturated to acc_bits and the check
// (ErrBadResW) refuses acc_bits > RES_W, so a field never truncates a value; CLIP8 and THRESHOLD
// fit 8 bits.
// A vector's last word is padded with zero fields; TKEEP (per byte) drops them on the packet's
// last beat.
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
  input  wire logic [1:0]                res_w_i,      // ResW* code (checked at start)
  // one output group from the array, taken when grp_valid_i && grp_ready_o (the capture)
  input  wire logic                      grp_valid_i,
  input  wire logic [LANES*ACC_BITS-1:0] acc_i,
  input  wire logic [ACC_BITS-1:0]       off_i,        // subtracted from every value (the array's shared term)
  input  wire logic [ThrBits-1:0]        thr_i,        // the group's thresholds (taken at the capture)
  input  wire logic [CntW-1:0]           cnt_i,        // values in the group
  input  wire logic                      vec_last_i,   // the group ends a vector
  input  wire logic                      job_last_i,   // ... and the job
  output logic                           grp_ready_o,  // the holding register is free, or frees this cycle
  output logic                           done_o,       // the packet's last beat was taken
  // the output stream
  output logic [DATA_W-1:0]              m_data_o,
  output logic [DATA_W/8-1:0]            m_keep_o,     // per byte
  output logic                           m_valid_o,
  output logic                           m_last_o,
  input  wire logic                      m_ready_i
);

  /* verilator lint_off UNUSEDPARAM */
  `BITCYCLE_CODES
  /* verilator lint_on UNUSEDPARAM */

  localparam int Bytes   = DATA_W / 8;
  localparam int MaxPer  = Bytes;                    // values per beat at RES_W = 8
  localparam int PerW    = $clog2(MaxPer + 1);
  localparam int ThrW    = THR_MAX * 32;

  localparam int IdxW    = (LANES > 1) ? $clog2(LANES) : 1;
  localparam int OffW    = $clog2(Bytes + 1);

  logic                        hold_valid_q, hold_valid_d;
  logic signed [ACC_BITS-1:0]  hold_q [LANES];
  logic signed [ACC_BITS-1:0]  hold_off_q;
  logic [ThrW-1:0]             hold_thr_q [THR_LANES];
  logic [CntW-1:0]             rem_q, rem_d;      // values of the held group not yet taken
  logic                        grp_end_q, grp_end_d;  // they fit this beat (rem_q <= per)
  logic                        hold_vec_last_q, hold_job_last_q;
  logic                        m_valid_q, m_valid_d, m_last_q, m_last_d, marker_q, marker_d, done_q, done_d;
  logic [DATA_W-1:0]           m_data_q, m_data_d, pack_q, pack_d, pack_next, blk;
  logic [Bytes-1:0]            m_keep_q, m_keep_d;
  logic [PerW-1:0]             per_q, take, pack_cnt_q, pack_cnt_d;
  logic [IdxW-1:0]             idx_q, idx_d;
  logic                        adv, step, emit;
  // The capture, one LUT from flip-flops and grp_valid_i. Kept as a net of its own: the engine
  // derives grp_valid_i a LUT before the port, and a per-module mapper, which takes every input as
  // arriving at time zero, would otherwise bury the capture deep in the next-state logic it feeds.
  (* keep *) logic             capture;

  // values per beat: DATA_W / RES_W, registered (res_w_i is latched at start, long before the
  // first capture; a reserved code is refused), so no decode sits before take and emit
  always_ff @(posedge clk_i) begin
    unique case (res_w_i)
      ResW16:  per_q <= PerW'(DATA_W / 16);
      ResW8:   per_q <= PerW'(DATA_W / 8);
      default: per_q <= PerW'(DATA_W / 32);
    endcase
  end

  // The value pipeline, one beat per cycle, all stages stalled together while the beat on offer
  // waits (adv low): a take (hold lanes idx..idx+take-1), b saturate, c function (fields past
  // take zeroed), d packing. Each stage carries the values' first field in the word (pos), how
  // many (take), whether they complete the word (emit) and whether that word ends the packet.
  logic                        a_valid_q, b_valid_q, c_valid_q;
  logic [PerW-1:0]             a_pos_q, b_pos_q, c_pos_q, a_take_q, b_take_q, c_take_q;
  logic                        a_emit_q, b_emit_q, c_emit_q, a_last_q, b_last_q, c_last_q;
  logic signed [ACC_BITS-1:0]  a_raw_q [MaxPer];
  logic signed [ACC_BITS-1:0]  b_sat_q [MaxPer];
  logic [ThrW-1:0]             a_thr_q [MaxPer];
  logic [ThrW-1:0]             b_thr_q [MaxPer];
  logic [31:0]                 c_val_q [MaxPer];
  logic signed [ACC_BITS-1:0]  sat_hi_q, sat_lo_q;
  logic signed [31:0]          value [MaxPer];

  assign adv     = !m_valid_q || m_ready_i;
  assign step    = hold_valid_q && adv && !stop_i;
  // grp_end_q is a register (set with rem_q at the capture and at each step), so the hand-over
  // signal grp_ready_o is a few gates from flip-flops, not a subtract-and-compare
  assign take    = grp_end_q ? PerW'(rem_q) : per_q;
  assign emit    = (32'(pack_cnt_q) + 32'(take) == 32'(per_q)) || (grp_end_q && hold_vec_last_q);

  function automatic logic [3:0] thresholds_reached(input logic signed [31:0] v,
                                                    input logic [ThrW-1:0] thr);
    logic [3:0] n;
    n = '0;
    for (int t = 0; t < THR_MAX; t++) n = n + 4'(v >= $signed(thr[t*32 +: 32]));
    thresholds_reached = n;
  endfunction

  function automatic logic signed [ACC_BITS-1:0] saturated(input logic signed [ACC_BITS-1:0] v,
      input logic signed [ACC_BITS-1:0] hi, input logic signed [ACC_BITS-1:0] lo);
    saturated = (v > hi) ? hi : ((v < lo) ? lo : v);
  endfunction

  // saturation bounds: constant during a job (acc_bits is latched at start), so registered
  logic signed [ACC_BITS-1:0] sat_hi;
  assign sat_hi = ACC_BITS'((48'sd1 <<< (acc_bits_i - 1'b1)) - 48'sd1);
  always_ff @(posedge clk_i) begin
    sat_hi_q <= sat_hi;
    sat_lo_q <= ~sat_hi;
  end

  // stage a's sources: value j is hold lane idx + j, and idx is a multiple of 2^ceil(log2(j+1))
  // whenever j is in use, so those low index bits are the constant j
  logic signed [ACC_BITS-1:0] sel_raw [MaxPer];
  logic [ThrW-1:0]            sel_thr [MaxPer];
  for (genvar j = 0; j < MaxPer; j++) begin : g_sel
    localparam int Low = (j == 0) ? 0 : $clog2(j + 1);
    logic [IdxW-1:0] src;
    if (Low >= IdxW) begin : g_const
      assign src = IdxW'(j);
    end else begin : g_idx
      assign src = (idx_q & ~IdxW'((1 << Low) - 1)) | IdxW'(j);
    end
    assign sel_raw[j] = (j < LANES) ? hold_q[src] : '0;
    assign sel_thr[j] = (j < THR_LANES) ? hold_thr_q[32'(src) % THR_LANES] : '0;
  end

  // CLIP8 = clamp(v >>> s, -128, 127). The clamps are bit tests on v beside the shift, not compares
  // after it: v >>> s > 127 exactly when v >= 2^(s+7) (v >= 0, a one among its bits from s+7 up),
  // and v >>> s < -128 when v < -2^(s+7) (v < 0, a zero among them); so only the 8 bits of
  // v >>> s that can survive are shifted out, and no carry chain follows the shifter.
  for (genvar j = 0; j < MaxPer; j++) begin : g_value
    logic [7:0]  shifted;          // the low 8 bits of v >>> s
    logic [31:0] hi_at, lo_at;     // the clamps for each shift s
    logic [3:0]  thr_count;
    assign shifted   = 8'(b_sat_q[j] >>> clip_shift_i);
    assign thr_count = thresholds_reached(32'(b_sat_q[j]), b_thr_q[j]);
    for (genvar sh = 0; sh < 32; sh++) begin : g_clip_at
      localparam int P = sh + 7;
      if (P >= ACC_BITS - 1) begin : g_never  // |v >>> s| < 2^(ACC_BITS-1-s) <= 128
        assign hi_at[sh] = 1'b0;
        assign lo_at[sh] = 1'b0;
      end else begin : g_test
        assign hi_at[sh] = !b_sat_q[j][ACC_BITS-1] && (b_sat_q[j][ACC_BITS-2:P] != '0);
        assign lo_at[sh] = b_sat_q[j][ACC_BITS-1] && (b_sat_q[j][ACC_BITS-2:P] != '1);
      end
    end
    always_comb begin
      unique case (out_sel_i)
        OutClip8:     value[j] = hi_at[clip_shift_i] ? 32'sd127
                                 : (lo_at[clip_shift_i] ? -32'sd128 : 32'($signed(shifted)));
        OutThreshold: value[j] = 32'(thr_count);
        OutRaw:       value[j] = 32'(b_sat_q[j]);
        default:      value[j] = 32'(b_sat_q[j]);  // reserved code: refused at start (ErrBadOutSel)
      endcase
    end
  end

  // stage d: the step's fields side by side (blk), moved to the word's next free byte (off)
  logic [OffW-1:0] off, used_bytes;
  always_comb begin
    blk = '0;
    for (int j = 0; j < MaxPer; j++) begin
      unique case (res_w_i)
        ResW8:   blk[j*8 +: 8] = c_val_q[j][7:0];
        ResW16:  if (j < Bytes / 2) blk[j*16 +: 16] = c_val_q[j][15:0];
        default: if (j < Bytes / 4) blk[j*32 +: 32] = c_val_q[j];
      endcase
    end
    unique case (res_w_i)
      ResW8:   begin off = OffW'(c_pos_q);      used_bytes = OffW'(c_pos_q + c_take_q);      end
      ResW16:  begin off = OffW'(c_pos_q) << 1; used_bytes = OffW'(c_pos_q + c_take_q) << 1; end
      default: begin off = OffW'(c_pos_q) << 2; used_bytes = OffW'(c_pos_q + c_take_q) << 2; end
    endcase
  end
  assign pack_next = pack_q | (blk << {off, 3'b000});

  always_comb begin
    hold_valid_d = hold_valid_q;
    idx_d        = idx_q;
    rem_d        = rem_q;
    grp_end_d    = grp_end_q;
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
      pack_cnt_d = emit ? '0 : pack_cnt_q + take;
      idx_d      = grp_end_q ? '0 : idx_q + IdxW'(per_q);
      rem_d      = rem_q - CntW'(per_q);
      grp_end_d  = 32'(rem_q) <= 2 * 32'(per_q);  // (rem_q - per <= per; unused after the group's end)
      if (grp_end_q) hold_valid_d = 1'b0;
    end
    if (adv && c_valid_q) begin  // stage d: the values into their fields; a full word out
      pack_d = c_emit_q ? '0 : pack_next;
      if (c_emit_q) begin
        m_valid_d = 1'b1;
        m_data_d  = pack_next;
        m_last_d  = c_last_q;
        for (int by = 0; by < Bytes; by++) m_keep_d[by] = !c_last_q || (by < 32'(used_bytes));
      end
    end
    if (capture) begin
      hold_valid_d = 1'b1;
      rem_d        = cnt_i;
      grp_end_d    = 32'(cnt_i) <= 32'(per_q);
    end
    // (no marker when the packet's last beat is on offer, or enters the output register now)
    if (close_i && !done_q && !(m_valid_q && m_last_q) && !(adv && c_valid_q && c_emit_q && c_last_q))
      marker_d = 1'b1;
    if (marker_q && (!m_valid_q || m_ready_i)) begin
      marker_d  = 1'b0;
      m_valid_d = 1'b1;
      m_data_d  = '0;
      m_last_d  = 1'b1;
      m_keep_d  = Bytes'(4'hF);  // one zero int32 lane
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
      rem_q        <= '0;
      grp_end_q    <= 1'b0;
      pack_cnt_q   <= '0;
      a_valid_q    <= 1'b0;
      b_valid_q    <= 1'b0;
      c_valid_q    <= 1'b0;
      m_valid_q    <= 1'b0;
      m_last_q     <= 1'b0;
      m_keep_q     <= '1;
      marker_q     <= 1'b0;
      done_q       <= 1'b0;
    end else begin
      hold_valid_q <= hold_valid_d;
      idx_q        <= idx_d;
      rem_q        <= rem_d;
      grp_end_q    <= grp_end_d;
      pack_cnt_q   <= pack_cnt_d;
      if (stop_i || start_run_i) begin
        a_valid_q <= 1'b0;
        b_valid_q <= 1'b0;
        c_valid_q <= 1'b0;
      end else if (adv) begin
        a_valid_q <= step;
        b_valid_q <= a_valid_q;
        c_valid_q <= b_valid_q;
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
      for (int j = 0; j < MaxPer; j++) begin
        a_raw_q[j] <= sel_raw[j] - hold_off_q;  // (exact: the check keeps every result in ACC_BITS)
        a_thr_q[j] <= sel_thr[j];
        b_sat_q[j] <= saturated(a_raw_q[j], sat_hi_q, sat_lo_q);
        b_thr_q[j] <= a_thr_q[j];
        c_val_q[j] <= (j < 32'(b_take_q)) ? value[j] : '0;  // fields past the group stay 0
      end
      a_pos_q  <= pack_cnt_q;
      a_take_q <= take;
      a_emit_q <= emit;
      a_last_q <= grp_end_q && hold_job_last_q;
      b_pos_q  <= a_pos_q;
      b_take_q <= a_take_q;
      b_emit_q <= a_emit_q;
      b_last_q <= a_last_q;
      c_pos_q  <= b_pos_q;
      c_take_q <= b_take_q;
      c_emit_q <= b_emit_q;
      c_last_q <= b_last_q;
    end
    if (capture) begin
      for (int o = 0; o < THR_LANES; o++) hold_thr_q[o] <= thr_i[o*ThrW +: ThrW];
      for (int o = 0; o < LANES; o++) hold_q[o] <= acc_i[o*ACC_BITS +: ACC_BITS];
      hold_off_q      <= off_i;
      hold_vec_last_q <= vec_last_i;
      hold_job_last_q <= job_last_i;
    end
  end

  // free now, or freed by this cycle's step: a capture in the same cycle is safe (the step reads
  // the holding register before the edge that overwrites it). Not gated by stop_i (a stop clears
  // the register whatever is captured), which keeps the abort logic out of the engine's stall.
  assign grp_ready_o = !hold_valid_q || (adv && grp_end_q);
  assign capture     = grp_valid_i && grp_ready_o;
  assign done_o      = done_q;
  assign m_data_o    = m_data_q;
  assign m_keep_o    = m_keep_q;
  assign m_valid_o   = m_valid_q;
  assign m_last_o    = m_last_q;

endmodule

`default_nettype wire
