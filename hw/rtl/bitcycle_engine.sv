// bitcycle_engine: BitCycle's runtime bit-width bit-serial MAC engine (no bus interface: the
// configuration comes in as ports; bitcycle_top connects them to the AXI4-Lite register block).
//
// One PE x SIMD array of binary x integer cells serves the three products of a training step:
//   forward          y  = W  . x        W from the weight memory, x streamed (reduction over SIMD)
//   backward-data    dx = W^T . dy      the same weight tile read transposed: reduction over the
//                                       PE rows, SIMD outputs (no copy of W)
//   backward-weight  dW = dy . sign(x)^T  sign(x) streamed into the activation memory first
// The integer operand arrives as bit-planes (bitcycle.golden.stream documents the words); the
// array takes one plane-chunk per cycle and adds it at its place value (2^p, MSB plane negated), so a job
// costs bits * ceil(rows/lanes) * ceil(len/chunk) * vectors cycles: cost follows the run-time width.
//
// This module is the job controller and the wiring of one-job modules:
//   bitcycle_skid       at both stream ports (registered TREADY in, registered TVALID/TDATA out)
//   bitcycle_cfg_check  configuration check and job geometry
//   bitcycle_in_fsm     input packet -> tile memories and the double-buffered vector buffer
//   bitcycle_issue      one plane-chunk per cycle: memory reads, then the beat's array control
//   bitcycle_array      the cells, popcounts and (DSP48) accumulators
//   bitcycle_out_stage  holding register, saturation / clip / thresholds, RES_W-bit fields out
//
// Job control: start_i samples the configuration; the next cycle checks it (errors end the job
// at once, nothing consumed); a long input packet is drained to its TLAST. A short input packet
// or abort_i cuts the job (aborted_o): the engine then closes its streams before it goes idle --
// an output beat already offered stays valid until taken, an open output packet gets a marker
// beat (one zero lane, TKEEP lane 0, TLAST), an open input packet is drained to its TLAST. A
// second abort_i while closing stops the input drain (the output still completes its handshake:
// TVALID never drops before it). start_i while busy is ignored. done_o/error_o/aborted_o hold
// until the next start.
`default_nettype none

module bitcycle_engine #(
  parameter int PE         = 4,    // output rows of the array (power of two)
  parameter int SIMD       = 16,   // reduction lanes of the array (power of two)
  parameter int ACC_BITS   = 32,   // signed accumulator width (<= 32: int32 lanes out)
  parameter int DATA_W     = 32,   // AXI-Stream data width: 32 or 64 (AXI DMA)
  parameter int THR_MAX    = 1,    // thresholds per output channel
  parameter int WMEM_DEPTH = 256,  // weight tiles (PE x SIMD bits each)
  parameter int AMEM_DEPTH = 256,  // sign(x) tiles for backward-weight
  parameter int TMEM_DEPTH = 64,   // threshold groups (PE channels each)
  parameter int MAX_CHUNKS = 64,   // chunks per input vector
  parameter bit READ_REG   = 1'b0, // tile/vector reads through the block RAM output register
  parameter bit POP_REG    = 1'b0, // a register inside the array's popcount trees (after the leaves)
                                   // (each: shorter paths, one more cycle of latency per job)
  localparam int DimW      = 16
) (
  input  wire logic                clk_i,
  input  wire logic                rst_ni,
  // configuration (sampled at start)
  input  wire logic [2:0]          cfg_mode_i,
  input  wire logic [4:0]          cfg_bits_i,
  input  wire logic [DimW-1:0]     cfg_m_i,
  input  wire logic [DimW-1:0]     cfg_k_i,
  input  wire logic [DimW-1:0]     cfg_n_i,
  input  wire logic [5:0]          cfg_acc_bits_i,
  input  wire logic [1:0]          cfg_out_sel_i,
  input  wire logic [4:0]          cfg_clip_shift_i,
  input  wire logic [1:0]          cfg_res_w_i,    // bits per result in the output stream (ResW*)
  input  wire logic                start_i,
  input  wire logic                abort_i,
  output logic                     busy_o,
  output logic                     done_o,
  output logic [8:0]               error_o,   // Err* bits (bitcycle_codes.svh)
  output logic [31:0]              cycles_o,
  output logic                     aborted_o, // the last job was cut (abort_i or a short packet)
  output logic                     checking_o, // START taken, the configuration being checked (with busy_o)
  // AXI4-Stream in
  input  wire logic [DATA_W-1:0]   s_axis_tdata,
  input  wire logic                s_axis_tvalid,
  output logic                     s_axis_tready,
  input  wire logic                s_axis_tlast,
  // AXI4-Stream out
  output logic [DATA_W-1:0]        m_axis_tdata,
  output logic [DATA_W/8-1:0]      m_axis_tkeep,   // result bytes (padding 0) on the TLAST beat
  output logic                     m_axis_tvalid,
  input  wire logic                m_axis_tready,
  output logic                     m_axis_tlast
);

  /* verilator lint_off UNUSEDPARAM */
  `BITCYCLE_CODES
  /* verilator lint_on UNUSEDPARAM */

  localparam int MaxBits   = 16;
  localparam int NumAcc    = (PE > SIMD) ? PE : SIMD;   // accumulators (output lanes)
  localparam int CntW      = $clog2(NumAcc + 1);
  localparam int TileBits  = PE * SIMD;
  localparam int TileWords = (TileBits + DATA_W - 1) / DATA_W;
  localparam int ThrBits   = PE * THR_MAX * 32;
  localparam int ThrWords  = (ThrBits + DATA_W - 1) / DATA_W;
  localparam int WAddrW    = (WMEM_DEPTH > 1) ? $clog2(WMEM_DEPTH) : 1;
  localparam int AAddrW    = (AMEM_DEPTH > 1) ? $clog2(AMEM_DEPTH) : 1;
  localparam int TAddrW    = (TMEM_DEPTH > 1) ? $clog2(TMEM_DEPTH) : 1;
  localparam int TileAddrW = (WAddrW > AAddrW) ? WAddrW : AAddrW;
  localparam int MemAddrW  = $clog2(WMEM_DEPTH + AMEM_DEPTH);  // W tiles, then sign(x) tiles
  localparam int BAddrW    = $clog2(MAX_CHUNKS * MaxBits);
  localparam int SubW      = (TileWords > ThrWords) ? $clog2(TileWords + 1) : $clog2(ThrWords + 1);

  bitcycle_param_check #(.FAIL(PE < 1 || (PE & (PE - 1)) != 0 || SIMD < 1 || (SIMD & (SIMD - 1)) != 0),
      .MSG("bitcycle_engine: PE and SIMD must be powers of two")) u_check_array ();
  bitcycle_param_check #(.FAIL(DATA_W != 32 && DATA_W != 64),
      .MSG("bitcycle_engine: DATA_W must be 32 or 64 (AXI DMA stream widths)")) u_check_dw ();
  bitcycle_param_check #(.FAIL(PE > DATA_W || SIMD > DATA_W),
      .MSG("bitcycle_engine: PE and SIMD must be <= DATA_W (one plane-chunk per stream word)")) u_check_chunk ();
  bitcycle_param_check #(.FAIL(ACC_BITS < 8 || ACC_BITS > 32),
      .MSG("bitcycle_engine: ACC_BITS must be in 8..32 (results leave as int32 lanes)")) u_check_acc ();
  bitcycle_param_check #(.FAIL(THR_MAX < 1 || THR_MAX > 15),
      .MSG("bitcycle_engine: THR_MAX must be in 1..15")) u_check_thr ();
  bitcycle_param_check #(.FAIL(WMEM_DEPTH < 1 || AMEM_DEPTH < 1 || TMEM_DEPTH < 1 || MAX_CHUNKS < 1),
      .MSG("bitcycle_engine: memory depths must be >= 1")) u_check_depth ();
  bitcycle_param_check #(.FAIL((MAX_CHUNKS & (MAX_CHUNKS - 1)) != 0),
      .MSG("bitcycle_engine: MAX_CHUNKS must be a power of two")) u_check_chunks ();

  // ---------------------------------------------------------------------------------------------
  // Job state: configuration latched at start, checked and turned into the job's geometry
  localparam logic [1:0] JobIdle = 2'd0, JobCheck = 2'd1, JobRun = 2'd2, JobClose = 2'd3;
  logic [1:0]      job_q, job_d;
  logic [2:0]      mode_q;
  logic [4:0]      bits_q;
  logic [DimW-1:0] m_q, k_q, n_q;
  logic [5:0]      acc_bits_q;
  logic [1:0]      out_sel_q;
  logic [4:0]      clip_shift_q;
  logic [1:0]      res_w_q;
  logic            busy_q, done_q, aborted_q;
  logic [ErrW-1:0] error_q, cfg_err;
  logic [31:0]     cycles_q;

  // the geometry, registered (constant during a job; START waits until the check has settled)
  // (the check's own register stages, then these registers: START decides CheckLat + 1 edges in)
  localparam int CheckLat = 2;
  logic            is_compute, trans, tiles_in, vec_in, is_compute_c, trans_c, tiles_in_c, check_done;
  logic [1:0]      check_cnt_q;
  logic [DimW-1:0] out_rows, red_len, n_vec, out_rows_c, red_len_c, n_vec_c;
  logic [DimW:0]   n_out, n_red, n_cols, n_out_c, n_red_c, n_cols_c;
  logic [CntW-1:0] lanes_out, chunk, lanes_out_c, chunk_c;
  logic [31:0]     load_tiles, load_tiles_c;
  logic [SubW-1:0] last_sub, load_words_c;  // (last_sub: a tile's last word, load_words - 1)
  logic [20:0]     vec_words, vec_words_c;
  logic [ErrW-1:0] cfg_err_c;

  bitcycle_cfg_check #(
    .PE(PE), .SIMD(SIMD), .ACC_BITS(ACC_BITS), .DATA_W(DATA_W), .THR_MAX(THR_MAX),
    .WMEM_DEPTH(WMEM_DEPTH), .AMEM_DEPTH(AMEM_DEPTH), .TMEM_DEPTH(TMEM_DEPTH), .MAX_CHUNKS(MAX_CHUNKS)
  ) u_cfg (
    .clk_i, .mode_i(mode_q), .bits_i(bits_q), .m_i(m_q), .k_i(k_q), .n_i(n_q), .acc_bits_i(acc_bits_q),
    .out_sel_i(out_sel_q), .res_w_i(res_w_q), .err_o(cfg_err_c), .is_compute_o(is_compute_c), .trans_o(trans_c),
    .tiles_in_o(tiles_in_c), .out_rows_o(out_rows_c), .red_len_o(red_len_c), .n_vec_o(n_vec_c),
    .n_out_o(n_out_c), .n_red_o(n_red_c), .n_cols_o(n_cols_c), .lanes_out_o(lanes_out_c), .chunk_o(chunk_c),
    .load_tiles_o(load_tiles_c), .load_words_o(load_words_c), .vec_words_o(vec_words_c)
  );
  always_ff @(posedge clk_i) begin
    {is_compute, trans, tiles_in, cfg_err}  <= {is_compute_c, trans_c, tiles_in_c, cfg_err_c};
    vec_in                                  <= (mode_q == ModeBackwardWeight) || !tiles_in_c;
    {out_rows, red_len, n_vec}              <= {out_rows_c, red_len_c, n_vec_c};
    {n_out, n_red, n_cols, lanes_out, chunk} <= {n_out_c, n_red_c, n_cols_c, lanes_out_c, chunk_c};
    {load_tiles, last_sub, vec_words}       <= {load_tiles_c, load_words_c - 1'b1, vec_words_c};
  end

  logic start_run, cut, stop_now, job_end, closing, err_short, err_long, err_short_q;
  logic in_done, in_draining, issue_active, out_done, out_idle;

  // ---------------------------------------------------------------------------------------------
  // Input port: skid buffer, then the input FSM and the memories it writes
  logic [DATA_W-1:0] in_data;
  logic              in_valid, in_ready, in_last;

  bitcycle_skid #(.WIDTH(DATA_W + 1)) u_skid_in (
    .clk_i, .rst_ni, .s_data_i({s_axis_tlast, s_axis_tdata}), .s_valid_i(s_axis_tvalid),
    .s_ready_o(s_axis_tready), .m_data_o({in_last, in_data}), .m_valid_o(in_valid), .m_ready_i(in_ready)
  );

  logic                 tile_we, vbuf_we, rd_release, rd_bank;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [31:0]          tile;          // (the memories take its low bits)
  /* verilator lint_on UNUSEDSIGNAL */
  logic [SubW-1:0]      sub;
  logic [1:0]           full;
  logic [BAddrW:0]      vbuf_waddr, vbuf_raddr;
  logic [TileAddrW-1:0] tile_raddr;
  logic [TAddrW-1:0]    thr_raddr;

  bitcycle_in_fsm #(.SUB_W(SubW), .BANK_AW(BAddrW)) u_in (
    .clk_i, .rst_ni, .start_run_i(start_run),
    .abort_run_i((job_q == JobRun || job_q == JobCheck) && abort_i),
    .job_end_i(job_end), .close_i(closing),
    .abort_i, .tiles_in_i(tiles_in), .vec_in_i(vec_in),
    .load_tiles_i(load_tiles), .last_sub_i(last_sub), .vec_words_i(vec_words), .n_vec_i(n_vec),
    .rd_release_i(rd_release), .rd_bank_i(rd_bank), .full_o(full),
    .s_valid_i(in_valid), .s_last_i(in_last), .s_ready_o(in_ready),
    .tile_we_o(tile_we), .tile_o(tile), .sub_o(sub), .vbuf_we_o(vbuf_we), .vbuf_waddr_o(vbuf_waddr),
    .done_o(in_done), .draining_o(in_draining), .err_short_o(err_short), .err_long_o(err_long)
  );

  logic [TileWords-1:0]        tile_lane;
  logic [ThrWords-1:0]         thr_lane;
  logic [TileWords*DATA_W-1:0] tile_rdata;
  logic [ThrWords*DATA_W-1:0]  tmem_rdata;
  logic [NumAcc-1:0]           vbuf_rdata;
  for (genvar i = 0; i < TileWords; i++) begin : g_tile_lane
    assign tile_lane[i] = (sub == SubW'(i));
  end
  for (genvar i = 0; i < ThrWords; i++) begin : g_thr_lane
    assign thr_lane[i] = (sub == SubW'(i));
  end

  // one tile memory: the weight tiles at 0.., the sign(x) tiles of backward-weight at WMEM_DEPTH..
  // (one read port, so no tile-wide multiplexer in front of the array)
  logic                is_bwd_weight;
  logic [MemAddrW-1:0] tile_mem_waddr, tile_mem_raddr;
  logic                freeze;  // compute pipeline stall (the group hand-over, below)
  assign is_bwd_weight  = (mode_q == ModeBackwardWeight);
  assign tile_mem_waddr = is_bwd_weight ? MemAddrW'(WMEM_DEPTH) + MemAddrW'(AAddrW'(tile))
                                        : MemAddrW'(WAddrW'(tile));
  assign tile_mem_raddr = is_bwd_weight ? MemAddrW'(WMEM_DEPTH) + MemAddrW'(AAddrW'(tile_raddr))
                                        : MemAddrW'(WAddrW'(tile_raddr));
  bitcycle_ram #(.LANE_W(DATA_W), .LANES(TileWords), .DEPTH(WMEM_DEPTH + AMEM_DEPTH), .OUT_REG(READ_REG)) u_tile_mem (
    .clk_i, .we_i(tile_we && (mode_q == ModeLoadWeights || is_bwd_weight)), .waddr_i(tile_mem_waddr),
    .wlane_i(tile_lane), .wdata_i(in_data), .re_i(!freeze), .raddr_i(tile_mem_raddr),
    .rdata_o(tile_rdata)
  );
  bitcycle_ram #(.LANE_W(DATA_W), .LANES(ThrWords), .DEPTH(TMEM_DEPTH), .RAM_STYLE("block")) u_tmem (
    .clk_i, .we_i(tile_we && mode_q == ModeLoadThresholds), .waddr_i(TAddrW'(tile)), .wlane_i(thr_lane),
    .wdata_i(in_data), .re_i(1'b1), .raddr_i(thr_raddr), .rdata_o(tmem_rdata)
  );
  bitcycle_ram #(.LANE_W(NumAcc), .LANES(1), .DEPTH(2 ** (BAddrW + 1)), .OUT_REG(READ_REG)) u_vbuf (
    .clk_i, .we_i(vbuf_we), .waddr_i(vbuf_waddr), .wlane_i(1'b1), .wdata_i(in_data[NumAcc-1:0]),
    .re_i(!freeze), .raddr_i(vbuf_raddr), .rdata_o(vbuf_rdata)
  );

  // ---------------------------------------------------------------------------------------------
  // Compute: issue sequencer -> array -> output stage
  logic              s1_valid, s1_first, s1_msb, s1_grp_last, s1_vec_last, s1_job_last;
  logic              s1_trans, s1_bipolar, out_grp_ready, issue_last, acc_first;
  logic [TAddrW-1:0] issue_grp;
  logic [NumAcc-1:0] s1_en;
  logic [3:0]        s1_plane;
  logic [CntW-1:0]   s1_out_cnt;
  logic [NumAcc*ACC_BITS-1:0] acc;
  logic [ACC_BITS-1:0]        acc_off;

  bitcycle_issue #(.CHUNK_W(NumAcc), .TILE_AW(TileAddrW), .THR_AW(TAddrW), .BANK_AW(BAddrW)) u_issue (
    .clk_i, .rst_ni, .start_run_i(start_run), .stop_i(stop_now), .is_compute_i(is_compute),
    .trans_i(trans), .bits_i(bits_q), .out_rows_i(out_rows),
    .red_len_i(red_len), .n_vec_i(n_vec), .n_out_i(n_out), .n_red_i(n_red), .n_cols_i(n_cols),
    .lanes_out_i(lanes_out), .chunk_i(chunk), .full_i(full), .freeze_i(freeze),
    .tile_raddr_o(tile_raddr), .grp_o(issue_grp), .last_o(issue_last), .vbuf_raddr_o(vbuf_raddr),
    .rd_release_o(rd_release), .rd_bank_o(rd_bank), .active_o(issue_active),
    .s1_valid_o(s1_valid), .s1_first_o(s1_first), .s1_plane_o(s1_plane), .s1_msb_o(s1_msb),
    .s1_grp_last_o(s1_grp_last), .s1_vec_last_o(s1_vec_last), .s1_job_last_o(s1_job_last),
    .s1_en_o(s1_en), .s1_out_cnt_o(s1_out_cnt), .s1_trans_o(s1_trans), .s1_bipolar_o(s1_bipolar)
  );

  // stage 2 (READ_REG = 1): the tile and vector reads leave the block RAMs' output registers; the
  // beat's array control follows them
  logic              s2_valid, s2_first, s2_msb, s2_trans, s2_bipolar;
  logic [3:0]        s2_plane;
  logic [NumAcc-1:0] s2_en;
  if (READ_REG) begin : g_read_reg
    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) s2_valid <= 1'b0;
      else         s2_valid <= !stop_now && (freeze ? s2_valid : s1_valid);
    end
    always_ff @(posedge clk_i) begin
      if (!freeze) begin
        {s2_first, s2_msb, s2_trans, s2_bipolar} <= {s1_first, s1_msb, s1_trans, s1_bipolar};
        s2_plane <= s1_plane;
        s2_en    <= s1_en;
      end
    end
  end else begin : g_no_read_reg
    assign {s2_valid, s2_first, s2_msb, s2_trans, s2_bipolar} = {s1_valid, s1_first, s1_msb, s1_trans, s1_bipolar};
    assign s2_plane = s1_plane;
    assign s2_en    = s1_en;
  end

  bitcycle_array #(.PE(PE), .SIMD(SIMD), .ACC_BITS(ACC_BITS), .TRANSPOSE(1'b1), .POP_REG(POP_REG)) u_array (
    .clk_i, .valid_i(s2_valid), .stall_i(freeze), .first_i(s2_first), .plane_i(s2_plane), .msb_i(s2_msb),
    .trans_i(s2_trans), .bipolar_i(s2_bipolar), .en_i(s2_en), .x_i(vbuf_rdata),
    .w_i(tile_rdata[TileBits-1:0]), .acc_o(acc), .off_o(acc_off), .first_o(acc_first)
  );

  logic [DATA_W-1:0]   o_data;
  logic [DATA_W/8-1:0] o_keep;
  logic                o_valid, o_ready, o_last;

  // Group hand-over. The array's result comes 2 + POP_REG cycles after its stage-2 beat ((leaf
  // counts,) popcounts, then the sums): a group's last beat travels a CapLat-deep pipeline and
  // "lands" in the accumulators. The output stage captures it when its holding register is free;
  // until then the accumulators keep it. Beats keep issuing meanwhile: only when the next group's
  // first beat reaches the accumulators before the landed group is captured does the whole pipeline
  // from the issue sequencer to the popcount registers freeze (the memories' read enables, every
  // stage's CE) until the capture. So the array waits for the output stage only when the output
  // stage is behind, and a group whose drain takes as long as its compute hands over with no lost
  // cycle: the capture comes the cycle the holding register empties, the same cycle the next
  // first beat reaches the accumulators.
  // Thresholds: the group index of every pending group (last beat issued, not yet captured: at most
  // CapLat + 2, one per pipeline stage and the landed one) waits in a small FIFO; a group counts as
  // pending from the cycle after its last beat issues (last_q), so the FIFO is not behind the issue
  // decision. The threshold memory is read at its head with one cycle of read latency: the cycle
  // after the head changes, the data still belong to the group before, so no capture then
  // (thr_stale_q). That matters when a group is captured the cycle after the one before it (a
  // one-beat drain), and when a group lands the cycle it becomes the head.
  localparam int CapLat = 2 + (READ_REG ? 1 : 0) + (POP_REG ? 1 : 0);
  localparam int PendD  = 8;                   // > CapLat + 2
  localparam int PendW  = $clog2(PendD);
  logic [CapLat-1:0]      cap_q, vec_last_q, job_last_q;
  logic [CapLat*CntW-1:0] cnt_q;
  logic [TAddrW-1:0]      pend_grp_q [PendD];  // the pending groups' indices, oldest at pend_rd_q
  logic [PendW-1:0]       pend_rd_q, pend_wr_q;
  logic [PendW-1:0]       pend_n;              // pending groups (fewer than PendD: no wrap)
  logic                   last_q;              // a group's last beat issued the cycle before
  logic                   stopped_q, last_ok;  // ... unless the job stopped (last_q is not gated)
  logic [TAddrW-1:0]      last_grp_q;          // ... and its group index
  logic                   landed_q, land_now, grp_valid, capture, can_capture, thr_stale_q, thr_stale_d;
  logic [CntW-1:0]        land_cnt_q;
  logic                   land_vec_last_q, land_job_last_q;

  bitcycle_param_check #(.FAIL(PendD <= CapLat + 2),
      .MSG("bitcycle_engine: the pending-group FIFO must hold more than CapLat + 2 groups")) u_check_pend ();

  assign land_now = cap_q[CapLat-1];
  // (neither term waits for stop_now: a stop clears the output stage, the pending groups and the
  // landing pipeline on its own, so the abort path stays off the stall's wide fan-out)
  assign can_capture = out_grp_ready && !thr_stale_q;
  // the landed group offered to the output stage, which captures it on grp_valid && grp_ready (the
  // same product as here: each side forms the capture from the two handshake signals)
  assign grp_valid = (land_now || landed_q) && !thr_stale_q;
  assign capture  = grp_valid && out_grp_ready;
  assign freeze   = acc_first && (land_now || landed_q) && !can_capture;
  assign thr_raddr = pend_grp_q[pend_rd_q];
  assign last_ok  = last_q && !stopped_q;
  assign pend_n   = pend_wr_q - pend_rd_q;
  // the head changes: the next group moves up, or a group arrives at an empty (or emptying) FIFO
  assign thr_stale_d = (capture && (pend_n >= 2 || last_ok)) || (last_ok && pend_n == 0);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      cap_q     <= '0;
      pend_rd_q <= '0;
      pend_wr_q <= '0;
      last_q    <= 1'b0;
      stopped_q <= 1'b0;
      landed_q  <= 1'b0;
    end else begin
      last_q    <= issue_last;
      stopped_q <= stop_now || start_run;
      if (stop_now)     cap_q <= '0;
      else if (!freeze) cap_q <= {cap_q[CapLat-2:0], s1_valid && s1_grp_last};
      if (stop_now || start_run) begin
        pend_rd_q <= '0;
        pend_wr_q <= '0;
      end else begin
        pend_rd_q <= pend_rd_q + PendW'(capture);
        pend_wr_q <= pend_wr_q + PendW'(last_ok);
      end
      landed_q <= !(stop_now || start_run) && !capture && (landed_q || land_now);
    end
  end
  always_ff @(posedge clk_i) begin
    if (!freeze) begin
      cnt_q      <= {cnt_q[(CapLat-1)*CntW-1:0], s1_out_cnt};
      vec_last_q <= {vec_last_q[CapLat-2:0], s1_vec_last};
      job_last_q <= {job_last_q[CapLat-2:0], s1_job_last};
    end
    if (last_ok) pend_grp_q[pend_wr_q] <= last_grp_q;
    last_grp_q  <= issue_grp;
    thr_stale_q <= thr_stale_d;
    if (land_now) begin
      land_cnt_q      <= cnt_q[CapLat*CntW-1 -: CntW];
      land_vec_last_q <= vec_last_q[CapLat-1];
      land_job_last_q <= job_last_q[CapLat-1];
    end
  end

  bitcycle_out_stage #(.LANES(NumAcc), .ACC_BITS(ACC_BITS), .DATA_W(DATA_W), .THR_MAX(THR_MAX),
                       .THR_LANES(PE)) u_out (
    .clk_i, .rst_ni, .start_run_i(start_run), .stop_i(stop_now), .close_i(cut && is_compute),
    .acc_bits_i(acc_bits_q), .out_sel_i(out_sel_q), .clip_shift_i(clip_shift_q), .res_w_i(res_w_q),
    .grp_valid_i(grp_valid), .acc_i(acc), .off_i(acc_off),
    .thr_i(tmem_rdata[ThrBits-1:0]),
    .cnt_i(landed_q ? land_cnt_q : cnt_q[CapLat*CntW-1 -: CntW]),
    .vec_last_i(landed_q ? land_vec_last_q : vec_last_q[CapLat-1]),
    .job_last_i(landed_q ? land_job_last_q : job_last_q[CapLat-1]), .grp_ready_o(out_grp_ready),
    .done_o(out_done), .m_data_o(o_data), .m_keep_o(o_keep), .m_valid_o(o_valid), .m_last_o(o_last),
    .m_ready_i(o_ready)
  );

  // Output port: skid buffer
  bitcycle_skid #(.WIDTH(DATA_W + DATA_W / 8 + 1)) u_skid_out (
    .clk_i, .rst_ni, .s_data_i({o_last, o_keep, o_data}), .s_valid_i(o_valid), .s_ready_o(o_ready),
    .m_data_o({m_axis_tlast, m_axis_tkeep, m_axis_tdata}), .m_valid_o(m_axis_tvalid), .m_ready_i(m_axis_tready)
  );
  // the job's packet has left through the port (the skid is empty once its output is)
  assign out_idle = !o_valid && !m_axis_tvalid;

  // ---------------------------------------------------------------------------------------------
  // Job control
  assign check_done = (check_cnt_q == 2'(CheckLat + 1));
  assign start_run = (job_q == JobCheck) && check_done && (cfg_err == '0) && !abort_i;
  // a short packet cuts the job the cycle after its last beat (err_short_q): the input FSM has
  // already stopped taking words, and the cut's wide fan-out starts from a flip-flop
  assign cut       = (job_q == JobRun) && (abort_i || err_short_q);
  assign stop_now  = abort_i || cut;  // the job in hand is cut or aborted this cycle
  // (!abort_i, not !cut: the other cause of a cut, a short packet, needs an input beat, and none
  // comes once the input is done)
  assign job_end   = (job_q == JobRun) && !abort_i && in_done &&
                     (!is_compute || (out_done && !issue_active && out_idle));  // (out_done: the last beat left)
  assign closing   = (job_q == JobClose);

  always_comb begin
    job_d = job_q;
    unique case (job_q)
      JobIdle:  if (start_i && !abort_i) job_d = JobCheck;
      JobCheck: if (abort_i)            job_d = JobClose;  // (the input may have begun: drain it)
                else if (check_done) job_d = (cfg_err == '0) ? JobRun : JobIdle;
      JobRun:   if (cut) job_d = JobClose;
                else if (job_end) job_d = JobIdle;
      JobClose: if (!in_draining && out_idle) job_d = JobIdle;
      default:  job_d = JobIdle;
    endcase
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      job_q        <= JobIdle;
      err_short_q  <= 1'b0;
      check_cnt_q  <= '0;
      mode_q       <= '0;
      bits_q       <= 5'd1;
      m_q          <= '0;
      k_q          <= '0;
      n_q          <= '0;
      acc_bits_q   <= 6'(ACC_BITS);
      out_sel_q    <= '0;
      clip_shift_q <= '0;
      res_w_q      <= '0;
      busy_q       <= 1'b0;
      done_q       <= 1'b0;
      aborted_q    <= 1'b0;
      error_q      <= '0;
      cycles_q     <= '0;
    end else begin
      job_q <= job_d;
      err_short_q <= err_short && (job_q == JobRun);
      if (busy_q) cycles_q <= cycles_q + 1;
      if (job_q == JobIdle && start_i && !abort_i) begin
        mode_q       <= cfg_mode_i;
        bits_q       <= cfg_bits_i;
        m_q          <= cfg_m_i;
        k_q          <= cfg_k_i;
        n_q          <= cfg_n_i;
        acc_bits_q   <= cfg_acc_bits_i;
        out_sel_q    <= cfg_out_sel_i;
        clip_shift_q <= cfg_clip_shift_i;
        res_w_q      <= cfg_res_w_i;
        busy_q       <= 1'b1;
        done_q       <= 1'b0;
        aborted_q    <= 1'b0;
        error_q      <= '0;
        cycles_q     <= '0;
      end
      check_cnt_q <= (job_q == JobCheck && !check_done) ? check_cnt_q + 2'd1 : '0;
      if (job_q == JobCheck && check_done && cfg_err != '0) error_q <= cfg_err;
      if (job_q == JobRun) begin
        if (err_long)  error_q[ErrStreamLong]  <= 1'b1;
        if (err_short) error_q[ErrStreamShort] <= 1'b1;
      end
      if (cut || (job_q == JobCheck && abort_i)) aborted_q <= 1'b1;
      if (job_q != JobIdle && job_d == JobIdle) begin
        busy_q <= 1'b0;
        done_q <= 1'b1;
      end
    end
  end

  assign busy_o    = busy_q;
  assign done_o    = done_q;
  assign error_o   = error_q;
  assign cycles_o  = cycles_q;
  assign aborted_o = aborted_q;
  assign checking_o = (job_q == JobCheck);

endmodule

`default_nettype wire
