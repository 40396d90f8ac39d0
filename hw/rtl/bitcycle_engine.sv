// bitcycle_engine: BitCycle's runtime bit-width bit-serial MAC engine (no bus interface: the
// configuration comes in as ports; bitcycle_top connects them to the AXI4-Lite register block).
//
// One PE x SIMD array of binary x integer cells serves the three products of a training step:
//   forward          y  = W  . x        W from the weight memory, x streamed (reduction over SIMD)
//   backward-data    dx = W^T . dy      the same weight tile read transposed: reduction over the
//                                       PE rows, SIMD outputs (no copy of W)
//   backward-weight  dW = dy . sign(x)^T  sign(x) streamed into the activation memory first
// The integer operand arrives as bit-planes (bitcycle.golden.stream documents the words); the
// array takes one plane-chunk per cycle and accumulates MSB-plane first by Horner's rule
// (acc = 2*acc + plane_sum on each new plane, the MSB plane negated for two's complement; a
// single bipolar plane when bits = 1 is the XNOR-popcount). So a job costs
// bits * ceil(rows/lanes) * ceil(len/chunk) * vectors cycles: cost follows the run-time width.
//
// Stream words per input vector = bits * ceil(len/chunk) <= the cycles spent on that vector, and
// the vector buffer is double-buffered, so loading overlaps compute. Results go through a
// holding register and a one-value-per-cycle output stage (saturate to acc_bits, then raw /
// 8-bit clip / thresholds) into int32 lanes of the output stream.
//
// Job control: start_i samples the configuration; the next cycle checks it (errors end the job
// at once, nothing consumed); a long input packet is drained to its TLAST. A short input packet
// or abort_i cuts the job (aborted_o): the engine then closes its streams before it goes idle --
// an output beat already offered stays valid until taken, an open output packet gets a marker
// beat (one zero lane, TKEEP lane 0, TLAST), an open input packet is drained to its TLAST. A
// second abort_i while closing stops the input drain (the output still completes its handshake:
// TVALID never drops before it). done_o/error_o/aborted_o hold until the next start.
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
  localparam int MaxBits   = 16,
  localparam int DimW      = 16
) (
  input  logic                clk_i,
  input  logic                rst_ni,
  // configuration (sampled at start)
  input  logic [2:0]          cfg_mode_i,
  input  logic [4:0]          cfg_bits_i,
  input  logic [DimW-1:0]     cfg_m_i,
  input  logic [DimW-1:0]     cfg_k_i,
  input  logic [DimW-1:0]     cfg_n_i,
  input  logic [5:0]          cfg_acc_bits_i,
  input  logic [1:0]          cfg_out_sel_i,
  input  logic [4:0]          cfg_clip_shift_i,
  input  logic                start_i,
  input  logic                abort_i,
  output logic                busy_o,
  output logic                done_o,
  output logic [7:0]          error_o,   // Err* bits below
  output logic [31:0]         cycles_o,
  output logic                aborted_o, // the last job was cut (abort_i or a short packet)
  // AXI4-Stream in
  input  logic [DATA_W-1:0]   s_axis_tdata,
  input  logic                s_axis_tvalid,
  output logic                s_axis_tready,
  input  logic                s_axis_tlast,
  // AXI4-Stream out
  output logic [DATA_W-1:0]   m_axis_tdata,
  output logic [DATA_W/8-1:0] m_axis_tkeep,   // per int32 lane: real results (padding 0) on TLAST
  output logic                m_axis_tvalid,
  input  logic                m_axis_tready,
  output logic                m_axis_tlast
);

  // Job modes, output-stage selects and error bits: the codes of hw/regs/bitcycle.rdl and
  // bitcycle.golden.stream. (Local parameters, not a package: Yosys 0.23 has no package import.)
  localparam logic [2:0] ModeForward        = 3'd0;  // y  = W  . x
  localparam logic [2:0] ModeBackwardData   = 3'd1;  // dx = W^T . dy
  localparam logic [2:0] ModeBackwardWeight = 3'd2;  // dW = dy . sign(x)^T
  localparam logic [2:0] ModeLoadWeights    = 3'd3;  // W tiles -> weight memory
  localparam logic [2:0] ModeLoadThresholds = 3'd4;  // thresholds -> threshold memory
  localparam logic [1:0] OutRaw       = 2'd0;        // sum saturated to acc_bits
  localparam logic [1:0] OutClip8     = 2'd1;        // clamp(sat >>> clip_shift, -128, 127)
  localparam logic [1:0] OutThreshold = 2'd2;        // thresholds reached (forward only)
  localparam int ErrW          = 8;
  localparam int ErrBadMode    = 0;  // MODE holds an unknown code
  localparam int ErrBadBits    = 1;  // BITS outside 1..16
  localparam int ErrBadShape   = 2;  // M/K/N zero, or too large for a memory
  localparam int ErrBadAccBits = 3;  // ACC_BITS outside 2..ACC_BITS parameter
  localparam int ErrOverflow   = 4;  // len * 2^(bits-1) could overflow the accumulator
  localparam int ErrBadOutSel  = 5;  // reserved OUT_SEL, or thresholds outside forward
  localparam int ErrShort      = 6;  // TLAST before the expected end: job aborted
  localparam int ErrLong       = 7;  // no TLAST at the expected end: rest drained

  // ---------------------------------------------------------------------------------------------
  // Parameters
  localparam int PeLog    = $clog2(PE);
  localparam int SimdLog  = $clog2(SIMD);
  localparam int NumAcc   = (PE > SIMD) ? PE : SIMD;   // accumulators (output lanes)
  localparam int ChunkW   = NumAcc;                    // plane-chunk word width
  localparam int CntW     = $clog2(NumAcc + 1);
  localparam int TileBits = PE * SIMD;
  localparam int TileWords = (TileBits + DATA_W - 1) / DATA_W;
  localparam int ThrBits  = PE * THR_MAX * 32;
  localparam int ThrWords = (ThrBits + DATA_W - 1) / DATA_W;
  localparam int OutLanes = DATA_W / 32;
  localparam int WAddrW   = (WMEM_DEPTH > 1) ? $clog2(WMEM_DEPTH) : 1;
  localparam int AAddrW   = (AMEM_DEPTH > 1) ? $clog2(AMEM_DEPTH) : 1;
  localparam int TAddrW   = (TMEM_DEPTH > 1) ? $clog2(TMEM_DEPTH) : 1;
  localparam int TileAddrW = (WAddrW > AAddrW) ? WAddrW : AAddrW;
  localparam int BankDepth = MAX_CHUNKS * MaxBits;
  localparam int BAddrW   = $clog2(BankDepth);
  localparam int SubW     = (TileWords > ThrWords) ? $clog2(TileWords + 1)
                                                            : $clog2(ThrWords + 1);
  localparam int LaneIdxW = (NumAcc > 1) ? $clog2(NumAcc) : 1;
  localparam int PackIdxW = (OutLanes > 1) ? $clog2(OutLanes) : 1;
  localparam logic signed [47:0] AccMax = (48'sd1 <<< (ACC_BITS - 1)) - 48'sd1;

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
  // Job state: configuration latched at start, derived sizes (constant during a job)
  localparam logic [1:0] JobIdle = 2'd0, JobCheck = 2'd1, JobRun = 2'd2, JobClose = 2'd3;
  logic [1:0] job_q, job_d;

  logic [2:0]      mode_q;
  logic [4:0]      bits_q;
  logic [DimW-1:0] m_q, k_q, n_q;
  logic [5:0]      acc_bits_q;
  logic [1:0]      out_sel_q;
  logic [4:0]      clip_shift_q;
  logic            busy_q, done_q, aborted_q;
  logic [ErrW-1:0] error_q;
  logic [31:0]     cycles_q;

  logic            is_fwd, is_bwd_data, is_bwd_weight, is_load_w, is_load_t, is_compute;
  logic [DimW:0]   m_pe, k_pe, k_simd, n_simd;  // ceil divisions (17 bits)
  logic [DimW-1:0] out_rows, red_len, n_vec;
  logic [DimW:0]   n_out, n_red, n_cols;
  logic [31:0]     w_tiles, a_tiles;
  logic [31:0]     load_tiles;
  logic [SubW-1:0] load_words;   // stream words per tile / threshold group
  logic [CntW-1:0] lanes_out, chunk;
  logic [20:0]     vec_words;    // bits * n_red (<= 16 * MAX_CHUNKS)
  logic [ErrW-1:0] cfg_err;

  // (No always_comb block here reads a variable it writes: Icarus 11 would re-trigger it forever.)
  assign is_fwd        = (mode_q == ModeForward);
  assign is_bwd_data   = (mode_q == ModeBackwardData);
  assign is_bwd_weight = (mode_q == ModeBackwardWeight);
  assign is_load_w     = (mode_q == ModeLoadWeights);
  assign is_load_t     = (mode_q == ModeLoadThresholds);
  assign is_compute    = is_fwd || is_bwd_data || is_bwd_weight;
  assign m_pe    = ({1'b0, m_q} + (DimW+1)'(PE - 1)) >> PeLog;
  assign k_pe    = ({1'b0, k_q} + (DimW+1)'(PE - 1)) >> PeLog;
  assign k_simd  = ({1'b0, k_q} + (DimW+1)'(SIMD - 1)) >> SimdLog;
  assign n_simd  = ({1'b0, n_q} + (DimW+1)'(SIMD - 1)) >> SimdLog;
  assign w_tiles = 32'(m_pe) * 32'(k_simd);
  assign a_tiles = 32'(k_pe) * 32'(n_simd);

  always_comb begin
    // forward: rows M over PE, reduction K over SIMD, N vectors, tiles of W row-major
    out_rows  = m_q;
    red_len   = k_q;
    n_vec     = n_q;
    n_out     = m_pe;
    n_red     = k_simd;
    n_cols    = k_simd;
    lanes_out = CntW'(PE);
    chunk     = CntW'(SIMD);
    if (is_bwd_data) begin  // rows K over SIMD (tile columns), reduction M over PE (tile rows)
      out_rows  = k_q;
      red_len   = m_q;
      n_out     = k_simd;
      n_red     = m_pe;
      lanes_out = CntW'(SIMD);
      chunk     = CntW'(PE);
    end else if (is_bwd_weight) begin  // sign(x) [K,N]: rows K over PE, reduction N, M vectors
      out_rows = k_q;
      red_len  = n_q;
      n_vec    = m_q;
      n_out    = k_pe;
      n_red    = n_simd;
      n_cols   = n_simd;
    end
  end
  assign load_tiles = is_load_t ? 32'(m_pe) : (is_bwd_weight ? a_tiles : w_tiles);
  assign load_words = is_load_t ? SubW'(ThrWords) : SubW'(TileWords);
  assign vec_words  = 21'(bits_q) * 21'(n_red);

  // Configuration check (JobCheck), on the latched registers.
  logic [47:0] worst;
  logic        bad_bits;
  // |sum| <= len * 2^(bits-1) (bipolar: len); partial Horner sums stay inside that bound
  assign worst    = (bits_q <= 5'd1) ? 48'(red_len) : (48'(red_len) << (bits_q - 5'd1));
  assign bad_bits = (bits_q < 5'd1) || (bits_q > 5'(MaxBits));
  logic shape_compute, shape_load_w, shape_load_t;
  assign shape_compute = (m_q == '0) || (k_q == '0) || (n_q == '0) ||
                         (n_red > (DimW+1)'(MAX_CHUNKS)) ||
                         (!is_bwd_weight && w_tiles > 32'(WMEM_DEPTH)) ||
                         (is_bwd_weight && a_tiles > 32'(AMEM_DEPTH)) ||
                         (is_fwd && out_sel_q == OutThreshold && m_pe > (DimW+1)'(TMEM_DEPTH));
  assign shape_load_w  = (m_q == '0) || (k_q == '0) || (w_tiles > 32'(WMEM_DEPTH));
  assign shape_load_t  = (m_q == '0) || (m_pe > (DimW+1)'(TMEM_DEPTH));
  assign cfg_err[ErrBadMode]    = (mode_q > 3'd4);
  assign cfg_err[ErrBadBits]    = is_compute && bad_bits;
  assign cfg_err[ErrBadAccBits] = is_compute && ((acc_bits_q < 6'd2) || (acc_bits_q > 6'(ACC_BITS)));
  assign cfg_err[ErrBadOutSel]  = is_compute && ((out_sel_q == 2'd3) || (out_sel_q == OutThreshold && !is_fwd));
  assign cfg_err[ErrBadShape]   = (is_compute && shape_compute) || (is_load_w && shape_load_w) ||
                                  (is_load_t && shape_load_t);
  assign cfg_err[ErrOverflow]   = is_compute && !bad_bits && ($signed(worst) > AccMax);
  assign cfg_err[ErrShort]      = 1'b0;  // stream errors arise while running, not at the check
  assign cfg_err[ErrLong]       = 1'b0;

  // ---------------------------------------------------------------------------------------------
  // Memories
  logic                 wmem_we, amem_we, tmem_we, vbuf_we;
  logic [31:0]          tile_q, tile_d;         // input: tile / group being written
  logic [SubW-1:0]      sub_q, sub_d;           // input: word within the tile
  logic [TileWords-1:0] tile_lane;
  logic [ThrWords-1:0]  thr_lane;
  logic [TileAddrW-1:0] rd_tile_addr;
  logic [TAddrW-1:0]    rd_thr_addr;
  logic [TileWords*DATA_W-1:0] wmem_rdata, amem_rdata;
  logic [ThrWords*DATA_W-1:0]  tmem_rdata;
  logic [BAddrW:0]      vbuf_waddr, vbuf_raddr;  // {bank, address}
  logic [ChunkW-1:0]    vbuf_rdata;

  for (genvar i = 0; i < TileWords; i++) begin : g_tile_lane
    assign tile_lane[i] = (sub_q == SubW'(i));
  end
  for (genvar i = 0; i < ThrWords; i++) begin : g_thr_lane
    assign thr_lane[i] = (sub_q == SubW'(i));
  end

  bitcycle_ram #(.LANE_W(DATA_W), .LANES(TileWords), .DEPTH(WMEM_DEPTH)) u_wmem (
    .clk_i, .we_i(wmem_we), .waddr_i(WAddrW'(tile_q)), .wlane_i(tile_lane), .wdata_i(s_axis_tdata),
    .raddr_i(WAddrW'(rd_tile_addr)), .rdata_o(wmem_rdata)
  );
  bitcycle_ram #(.LANE_W(DATA_W), .LANES(TileWords), .DEPTH(AMEM_DEPTH)) u_amem (
    .clk_i, .we_i(amem_we), .waddr_i(AAddrW'(tile_q)), .wlane_i(tile_lane), .wdata_i(s_axis_tdata),
    .raddr_i(AAddrW'(rd_tile_addr)), .rdata_o(amem_rdata)
  );
  bitcycle_ram #(.LANE_W(DATA_W), .LANES(ThrWords), .DEPTH(TMEM_DEPTH)) u_tmem (
    .clk_i, .we_i(tmem_we), .waddr_i(TAddrW'(tile_q)), .wlane_i(thr_lane), .wdata_i(s_axis_tdata),
    .raddr_i(rd_thr_addr), .rdata_o(tmem_rdata)
  );
  bitcycle_ram #(.LANE_W(ChunkW), .LANES(1), .DEPTH(2 * BankDepth)) u_vbuf (
    .clk_i, .we_i(vbuf_we), .waddr_i(vbuf_waddr), .wlane_i(1'b1), .wdata_i(s_axis_tdata[ChunkW-1:0]),
    .raddr_i(vbuf_raddr), .rdata_o(vbuf_rdata)
  );

  // ---------------------------------------------------------------------------------------------
  // Input side: tiles (load modes, sign(x) of backward-weight), then vectors into the two banks
  localparam logic [2:0] InIdle = 3'd0, InTiles = 3'd1, InVec = 3'd2, InDrain = 3'd3, InDone = 3'd4;
  logic [2:0]      in_q, in_d;
  logic [1:0]      full_q, full_d;          // vector bank holds a complete vector
  logic            wbank_q, wbank_d;
  logic [20:0]     waddr_q, waddr_d;        // word within the vector
  logic [DimW-1:0] wvec_q, wvec_d;          // vectors received
  logic            in_beat, err_short, err_long;
  logic            rd_release;              // compute: last read of the current bank issued
  logic            start_run;               // JobCheck -> JobRun this cycle
  logic            cut;                     // abort_i or a short packet in JobRun
  logic            in_open_q, in_open_d;    // an input packet has begun and not yet ended

  assign s_axis_tready = (in_q == InTiles) || (in_q == InDrain) ||
                         (in_q == InVec && !full_q[wbank_q]);
  assign in_beat    = s_axis_tvalid && s_axis_tready;
  assign in_open_d  = in_beat ? !s_axis_tlast : in_open_q;
  assign wmem_we    = in_beat && (in_q == InTiles) && is_load_w;
  assign amem_we    = in_beat && (in_q == InTiles) && is_bwd_weight;
  assign tmem_we    = in_beat && (in_q == InTiles) && is_load_t;
  assign vbuf_we    = in_beat && (in_q == InVec);
  assign vbuf_waddr = {wbank_q, BAddrW'(waddr_q)};

  logic tiles_end, vec_end, stream_end;
  assign tiles_end  = (sub_q == load_words - 1'b1) && (tile_q == load_tiles - 1);
  assign vec_end    = (waddr_q == vec_words - 1'b1);
  assign stream_end = (in_q == InTiles && tiles_end && !is_bwd_weight) ||
                      (in_q == InVec && vec_end && (wvec_q == n_vec - 1'b1));

  // a bank empties when compute has issued its last read of it, fills with a vector's last word
  logic [1:0] full_clr, full_set;
  assign full_clr = rd_release ? (2'b01 << rbank_q) : 2'b00;
  assign full_set = (vbuf_we && vec_end) ? (2'b01 << wbank_q) : 2'b00;
  assign full_d   = start_run ? 2'b00 : ((full_q & ~full_clr) | full_set);

  always_comb begin
    in_d      = in_q;
    tile_d    = tile_q;
    sub_d     = sub_q;
    wbank_d   = wbank_q;
    waddr_d   = waddr_q;
    wvec_d    = wvec_q;
    err_short = 1'b0;
    err_long  = 1'b0;
    unique case (in_q)
      InTiles: if (in_beat) begin
        if (sub_q == load_words - 1'b1) begin
          sub_d  = '0;
          tile_d = tile_q + 1;
        end else begin
          sub_d = sub_q + 1'b1;
        end
        if (tiles_end && is_bwd_weight) in_d = InVec;
      end
      InVec: if (in_beat) begin
        waddr_d = waddr_q + 1'b1;
        if (vec_end) begin
          waddr_d         = '0;
          wbank_d         = ~wbank_q;
          wvec_d          = wvec_q + 1'b1;
        end
      end
      InDrain: if (in_beat && s_axis_tlast) in_d = InDone;
      default: ;
    endcase
    if (in_beat && (in_q == InTiles || in_q == InVec)) begin
      if (stream_end) begin
        if (s_axis_tlast) in_d = InDone;
        else              in_d = InDrain;
        err_long = !s_axis_tlast;
      end else if (s_axis_tlast) begin
        err_short = 1'b1;
      end
    end
    if (start_run) begin
      if (is_load_w || is_load_t || is_bwd_weight) in_d = InTiles;
      else                                         in_d = InVec;
      tile_d  = '0;
      sub_d   = '0;
      wbank_d = 1'b0;
      waddr_d = '0;
      wvec_d  = '0;
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Compute: issue one plane-chunk per cycle (stage 0: addresses), accumulate (stage 1)
  logic            c_active_q, c_active_d;   // beats left to issue
  logic            rbank_q, rbank_d;
  logic [4:0]      pl_q, pl_d;               // plane, MSB first
  logic [DimW:0]   rc_q, rc_d;               // reduction chunk
  logic [DimW:0]   og_q, og_d;               // output group
  logic [DimW-1:0] rvec_q, rvec_d;           // vector
  logic [DimW-1:0] red_off_q, red_off_d;     // rc * chunk
  logic [DimW-1:0] out_off_q, out_off_d;     // og * lanes_out
  logic [31:0]     taddr_q, taddr_d;         // tile address of the beat
  logic [31:0]     gbase_q, gbase_d;         // tile address of (group, chunk 0)
  logic [20:0]     raddr_q, raddr_d;         // vector-buffer word of the beat
  logic            grp_first, grp_last, vec_last, job_last, issue, hold_free;

  // stage 1
  logic                s1_valid_q, s1_first_q, s1_plane_first_q, s1_msb_q, s1_grp_last_q;
  logic                s1_vec_last_q, s1_job_last_q;
  logic [ChunkW-1:0]   s1_en_q;
  logic [CntW-1:0]     s1_out_cnt_q;

  // holding register (results of one output group) and output stage
  logic                        hold_valid_q, hold_valid_d;
  logic signed [ACC_BITS-1:0]  hold_q [NumAcc];
  logic [ThrBits-1:0]          hold_thr_q;
  logic [CntW-1:0]             hold_cnt_q;
  logic                        hold_vec_last_q, hold_job_last_q;
  logic signed [ACC_BITS-1:0]  acc_q [NumAcc];
  logic [NumAcc*ACC_BITS-1:0]  acc_d;  // lane o at [o*ACC_BITS +: ACC_BITS] (flat: Yosys 0.23)

  assign grp_first = (pl_q == bits_q - 1'b1) && (rc_q == '0);
  assign grp_last  = (pl_q == '0) && (rc_q == n_red - 1'b1);
  assign vec_last  = grp_last && (og_q == n_out - 1'b1);
  assign job_last  = vec_last && (rvec_q == n_vec - 1'b1);
  assign hold_free = !hold_valid_q && !(s1_valid_q && s1_grp_last_q);
  assign issue     = c_active_q && full_q[rbank_q] && (!grp_last || hold_free);
  assign rd_release = issue && vec_last;

  assign rd_tile_addr = TileAddrW'(taddr_q);
  assign rd_thr_addr  = TAddrW'(og_q);
  assign vbuf_raddr   = {rbank_q, BAddrW'(raddr_q)};

  always_comb begin
    c_active_d = c_active_q;
    rbank_d    = rbank_q;
    pl_d       = pl_q;
    rc_d       = rc_q;
    og_d       = og_q;
    rvec_d     = rvec_q;
    red_off_d  = red_off_q;
    out_off_d  = out_off_q;
    taddr_d    = taddr_q;
    gbase_d    = gbase_q;
    raddr_d    = raddr_q;
    if (issue) begin
      raddr_d = raddr_q + 1'b1;
      if (rc_q != n_red - 1'b1) begin            // next chunk of this plane
        rc_d      = rc_q + 1'b1;
        red_off_d = red_off_q + DimW'(chunk);
        taddr_d   = taddr_q + (is_bwd_data ? 32'(n_cols) : 32'd1);
      end else begin
        rc_d      = '0;
        red_off_d = '0;
        taddr_d   = gbase_q;
        if (pl_q != '0) begin                    // next plane of this group
          pl_d = pl_q - 1'b1;
        end else begin                           // next output group
          pl_d      = bits_q - 1'b1;
          raddr_d   = '0;
          og_d      = og_q + 1'b1;
          out_off_d = out_off_q + DimW'(lanes_out);
          gbase_d   = gbase_q + (is_bwd_data ? 32'd1 : 32'(n_cols));
          taddr_d   = gbase_q + (is_bwd_data ? 32'd1 : 32'(n_cols));
          if (og_q == n_out - 1'b1) begin        // next vector (other bank)
            og_d      = '0;
            out_off_d = '0;
            gbase_d   = '0;
            taddr_d   = '0;
            rbank_d   = ~rbank_q;
            rvec_d    = rvec_q + 1'b1;
            if (rvec_q == n_vec - 1'b1) c_active_d = 1'b0;
          end
        end
      end
    end
    if (start_run) begin
      c_active_d = is_compute;
      rbank_d    = 1'b0;
      pl_d       = bits_q - 1'b1;
      rc_d       = '0;
      og_d       = '0;
      rvec_d     = '0;
      red_off_d  = '0;
      out_off_d  = '0;
      taddr_d    = '0;
      gbase_d    = '0;
      raddr_d    = '0;
    end
  end

  // The array: cell (i, j) = weight tile bit i*SIMD + j. Forward lanes are rows i (sum over j);
  // transposed lanes are columns j (sum over i). Integer plane bits are x[j] resp. x[i].
  logic [TileBits-1:0]           wtile;
  logic [NumAcc*CntW-1:0]       pop_match;  // lane o at [o*CntW +: CntW]
  logic [CntW-1:0]               pop_x, pop_en;
  logic                          s1_trans_q, s1_bipolar_q, s1_amem_q;

  function automatic logic [CntW-1:0] popcount(input logic [NumAcc-1:0] v);
    logic [CntW-1:0] n;
    n = '0;
    for (int i = 0; i < NumAcc; i++) n = n + CntW'(v[i]);
    popcount = n;  // (no `return`: Yosys 0.23)
  endfunction

  assign wtile  = s1_amem_q ? amem_rdata[TileBits-1:0] : wmem_rdata[TileBits-1:0];
  assign pop_x  = popcount(s1_en_q & vbuf_rdata);
  assign pop_en = popcount(s1_en_q);

  // cell_hit[i*SIMD+j]: does cell (i, j) count? (AND for an integer plane, XNOR for the bipolar one)
  logic [TileBits-1:0] cell_hit;
  for (genvar i = 0; i < PE; i++) begin : g_row
    for (genvar j = 0; j < SIMD; j++) begin : g_col
      logic xbit, en;
      assign xbit = s1_trans_q ? vbuf_rdata[i] : vbuf_rdata[j];
      assign en   = s1_trans_q ? s1_en_q[i] : s1_en_q[j];
      assign cell_hit[i*SIMD+j] = en & (s1_bipolar_q ? ~(wtile[i*SIMD+j] ^ xbit) : (wtile[i*SIMD+j] & xbit));
    end
  end

  // Per output lane: popcount of its row (forward) or column (transposed), then Horner
  // accumulation acc = (first ? 0 : plane_first ? 2*acc : acc) +/- plane_sum.
  for (genvar o = 0; o < NumAcc; o++) begin : g_lane
    logic [NumAcc-1:0]          row_hits, col_hits;
    logic signed [ACC_BITS-1:0] base, plane_sum;
    if (o < PE) begin : g_has_row
      assign row_hits = NumAcc'(cell_hit[o*SIMD +: SIMD]);
    end else begin : g_no_row
      assign row_hits = '0;
    end
    for (genvar i = 0; i < NumAcc; i++) begin : g_col_bit
      if (o < SIMD && i < PE) begin : g_in
        assign col_hits[i] = cell_hit[i*SIMD+o];
      end else begin : g_out
        assign col_hits[i] = 1'b0;
      end
    end
    assign pop_match[o*CntW +: CntW] = popcount(s1_trans_q ? col_hits : row_hits);
    assign base      = s1_first_q ? '0 : (s1_plane_first_q ? (acc_q[o] <<< 1) : acc_q[o]);
    assign plane_sum = (ACC_BITS'(pop_match[o*CntW +: CntW]) <<< 1) - ACC_BITS'(s1_bipolar_q ? pop_en : pop_x);
    assign acc_d[o*ACC_BITS +: ACC_BITS] = s1_valid_q ? (s1_msb_q ? base - plane_sum : base + plane_sum) : acc_q[o];
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      c_active_q <= 1'b0;
      rbank_q    <= 1'b0;
      pl_q       <= '0;
      rc_q       <= '0;
      og_q       <= '0;
      rvec_q     <= '0;
      red_off_q  <= '0;
      out_off_q  <= '0;
      taddr_q    <= '0;
      gbase_q    <= '0;
      raddr_q    <= '0;
      s1_valid_q <= 1'b0;
      s1_first_q <= 1'b0;
      s1_plane_first_q <= 1'b0;
      s1_msb_q   <= 1'b0;
      s1_grp_last_q <= 1'b0;
      s1_vec_last_q <= 1'b0;
      s1_job_last_q <= 1'b0;
      s1_en_q    <= '0;
      s1_out_cnt_q <= '0;
      s1_trans_q <= 1'b0;
      s1_bipolar_q <= 1'b0;
      s1_amem_q  <= 1'b0;
      for (int o = 0; o < NumAcc; o++) acc_q[o] <= '0;
    end else if (abort_i || cut) begin
      c_active_q <= 1'b0;
      s1_valid_q <= 1'b0;
    end else begin
      c_active_q <= c_active_d;
      rbank_q    <= rbank_d;
      pl_q       <= pl_d;
      rc_q       <= rc_d;
      og_q       <= og_d;
      rvec_q     <= rvec_d;
      red_off_q  <= red_off_d;
      out_off_q  <= out_off_d;
      taddr_q    <= taddr_d;
      gbase_q    <= gbase_d;
      raddr_q    <= raddr_d;
      s1_valid_q <= issue;
      if (issue) begin
        s1_first_q       <= grp_first;
        s1_plane_first_q <= (rc_q == '0);
        s1_msb_q         <= (pl_q == bits_q - 1'b1) && (bits_q != 5'd1);
        s1_grp_last_q    <= grp_last;
        s1_vec_last_q    <= vec_last;
        s1_job_last_q    <= job_last;
        for (int j = 0; j < ChunkW; j++) begin
          s1_en_q[j] <= (j < 32'(chunk)) && (32'(red_off_q) + j < 32'(red_len));
        end
        s1_out_cnt_q <= (32'(out_rows) - 32'(out_off_q) < 32'(lanes_out))
                        ? CntW'(out_rows - out_off_q) : lanes_out;
      end
      s1_trans_q   <= is_bwd_data;
      s1_bipolar_q <= (bits_q == 5'd1);
      s1_amem_q    <= is_bwd_weight;
      for (int o = 0; o < NumAcc; o++) acc_q[o] <= acc_d[o*ACC_BITS +: ACC_BITS];
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Output stage: one value per cycle from the holding register into int32 lanes of a word
  logic                       m_valid_q, m_valid_d, m_last_q, m_last_d;
  logic [OutLanes-1:0]        m_keep_q, m_keep_d;     // int32 lanes that carry a result
  logic                       marker_q, marker_d;     // a cut job owes its packet a TLAST beat
  logic                       stop_out;               // cut or abort: the serializer stops
  logic [DATA_W-1:0]          m_data_q, m_data_d;
  logic [DATA_W-1:0]          pack_q, pack_d;
  logic [PackIdxW-1:0]        pack_cnt_q, pack_cnt_d;
  logic [LaneIdxW-1:0]        idx_q, idx_d;
  logic                       out_done_q, out_done_d;
  logic                       ser_step, ser_grp_end, ser_emit;
  logic signed [ACC_BITS-1:0] sel_raw, sat, sat_hi, sat_lo, shifted;
  logic signed [31:0]         value;
  logic [3:0]                 thr_count;

  assign stop_out    = abort_i || cut;
  assign ser_step    = hold_valid_q && (!m_valid_q || m_axis_tready) && !stop_out;
  assign ser_grp_end = (32'(idx_q) == 32'(hold_cnt_q) - 1);
  assign ser_emit    = ser_step && ((32'(pack_cnt_q) == OutLanes - 1) || (ser_grp_end && hold_vec_last_q));

  function automatic logic [3:0] thresholds_reached(input logic signed [31:0] v,
                                                    input logic [THR_MAX*32-1:0] thr);
    logic [3:0] n;
    n = '0;
    for (int t = 0; t < THR_MAX; t++) n = n + 4'(v >= $signed(thr[t*32 +: 32]));
    thresholds_reached = n;
  endfunction

  assign sat_hi    = ACC_BITS'((48'sd1 <<< (acc_bits_q - 1'b1)) - 48'sd1);
  assign sat_lo    = ~sat_hi;
  assign sel_raw   = hold_q[idx_q];
  assign sat       = (sel_raw > sat_hi) ? sat_hi : ((sel_raw < sat_lo) ? sat_lo : sel_raw);
  assign shifted   = sat >>> clip_shift_q;
  assign thr_count = thresholds_reached(32'(sat), hold_thr_q[32'(idx_q)*THR_MAX*32 +: THR_MAX*32]);

  always_comb begin
    unique case (out_sel_q)
      OutClip8:     value = (shifted > 127) ? 32'sd127 : ((shifted < -128) ? -32'sd128 : 32'(shifted));
      OutThreshold: value = 32'(thr_count);
      OutRaw:       value = 32'(sat);
      default:      value = 32'(sat);  // reserved code: refused at start (ErrBadOutSel)
    endcase
  end

  logic [DATA_W-1:0] pack_next;  // pack_q with this step's value in its lane
  for (genvar l = 0; l < OutLanes; l++) begin : g_pack
    assign pack_next[l*32 +: 32] = (32'(pack_cnt_q) == l) ? value : pack_q[l*32 +: 32];
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
    out_done_d   = out_done_q;
    if (m_valid_q && m_axis_tready) begin
      m_valid_d = 1'b0;
      if (m_last_q) out_done_d = 1'b1;
    end
    if (ser_step) begin
      pack_d     = pack_next;
      pack_cnt_d = pack_cnt_q + 1'b1;
      idx_d = idx_q + 1'b1;
      if (ser_grp_end) begin
        idx_d        = '0;
        hold_valid_d = 1'b0;
      end
      if (ser_emit) begin
        m_valid_d  = 1'b1;
        m_data_d   = pack_next;
        m_last_d   = ser_grp_end && hold_job_last_q;
        for (int l = 0; l < OutLanes; l++) begin
          m_keep_d[l] = !(ser_grp_end && hold_job_last_q) || (l <= 32'(pack_cnt_q));
        end
        pack_d     = '0;
        pack_cnt_d = '0;
      end
    end
    if (s1_valid_q && s1_grp_last_q) hold_valid_d = 1'b1;  // never while full (hold_free)
    // a cut compute job closes its open packet (unless the beat on offer already is its last)
    if (cut && is_compute && !out_done_q && !(m_valid_q && m_last_q)) marker_d = 1'b1;
    if (marker_q && (!m_valid_q || m_axis_tready)) begin
      marker_d  = 1'b0;
      m_valid_d = 1'b1;
      m_data_d  = '0;
      m_last_d  = 1'b1;
      m_keep_d  = OutLanes'(1);
    end
    if (stop_out) begin
      hold_valid_d = 1'b0;
      idx_d        = '0;
      pack_d       = '0;
      pack_cnt_d   = '0;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      hold_valid_q    <= 1'b0;
      hold_cnt_q      <= '0;
      hold_vec_last_q <= 1'b0;
      hold_job_last_q <= 1'b0;
      hold_thr_q      <= '0;
      for (int o = 0; o < NumAcc; o++) hold_q[o] <= '0;
      idx_q      <= '0;
      pack_q     <= '0;
      pack_cnt_q <= '0;
      m_valid_q  <= 1'b0;
      m_data_q   <= '0;
      m_last_q   <= 1'b0;
      m_keep_q   <= '1;
      marker_q   <= 1'b0;
      out_done_q <= 1'b0;
    end else if (start_run) begin  // the previous job's packet is closed (m_valid_q low)
      hold_valid_q <= 1'b0;
      idx_q        <= '0;
      pack_q       <= '0;
      pack_cnt_q   <= '0;
      out_done_q   <= 1'b0;
    end else begin
      hold_valid_q <= hold_valid_d;
      idx_q        <= idx_d;
      pack_q       <= pack_d;
      pack_cnt_q   <= pack_cnt_d;
      m_valid_q    <= m_valid_d;
      m_data_q     <= m_data_d;
      m_last_q     <= m_last_d;
      m_keep_q     <= m_keep_d;
      marker_q     <= marker_d;
      out_done_q   <= out_done_d;
      if (s1_valid_q && s1_grp_last_q) begin
        for (int o = 0; o < NumAcc; o++) hold_q[o] <= acc_d[o*ACC_BITS +: ACC_BITS];
        hold_thr_q      <= tmem_rdata[ThrBits-1:0];
        hold_cnt_q      <= s1_out_cnt_q;
        hold_vec_last_q <= s1_vec_last_q;
        hold_job_last_q <= s1_job_last_q;
      end
    end
  end

  assign m_axis_tvalid = m_valid_q;
  assign m_axis_tdata  = m_data_q;
  assign m_axis_tlast  = m_last_q;
  for (genvar b = 0; b < DATA_W / 8; b++) begin : g_keep
    assign m_axis_tkeep[b] = m_keep_q[b / 4];
  end

  // ---------------------------------------------------------------------------------------------
  // Job control
  assign start_run = (job_q == JobCheck) && (cfg_err == '0) && !abort_i;
  assign cut       = (job_q == JobRun) && (abort_i || err_short);

  always_comb begin
    job_d = job_q;
    unique case (job_q)
      JobIdle:  if (start_i) job_d = JobCheck;
      JobCheck: if (cfg_err == '0) job_d = JobRun;
                else                job_d = JobIdle;
      JobRun:   if (cut) job_d = JobClose;
                else if (in_q == InDone && (!is_compute || (out_done_q && !c_active_q))) job_d = JobIdle;
      JobClose: if (in_q != InDrain && !marker_q && !m_valid_q) job_d = JobIdle;
      default:  job_d = JobIdle;
    endcase
    if (abort_i && job_q == JobCheck) job_d = JobIdle;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      job_q        <= JobIdle;
      mode_q       <= '0;
      bits_q       <= 5'd1;
      m_q          <= '0;
      k_q          <= '0;
      n_q          <= '0;
      acc_bits_q   <= 6'(ACC_BITS);
      out_sel_q    <= '0;
      clip_shift_q <= '0;
      busy_q       <= 1'b0;
      done_q       <= 1'b0;
      aborted_q    <= 1'b0;
      error_q      <= '0;
      cycles_q     <= '0;
      in_q         <= InIdle;
      in_open_q    <= 1'b0;
      tile_q       <= '0;
      sub_q        <= '0;
      full_q       <= '0;
      wbank_q      <= 1'b0;
      waddr_q      <= '0;
      wvec_q       <= '0;
    end else begin
      job_q   <= job_d;
      in_q    <= in_d;
      in_open_q <= in_open_d;
      tile_q  <= tile_d;
      sub_q   <= sub_d;
      full_q  <= full_d;
      wbank_q <= wbank_d;
      waddr_q <= waddr_d;
      wvec_q  <= wvec_d;
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
        busy_q       <= 1'b1;
        done_q       <= 1'b0;
        aborted_q    <= 1'b0;
        error_q      <= '0;
        cycles_q     <= '0;
      end
      if (job_q == JobCheck && cfg_err != '0) begin
        error_q <= cfg_err;
        busy_q  <= 1'b0;
        done_q  <= 1'b1;
      end
      if (job_q == JobRun) begin
        if (err_long) error_q[ErrLong] <= 1'b1;
        if (err_short) error_q[ErrShort] <= 1'b1;
        if (job_d == JobIdle) begin
          busy_q <= 1'b0;
          done_q <= 1'b1;
          in_q   <= InIdle;
        end
      end
      if (cut) begin  // close the streams: drain an open input packet to its TLAST
        aborted_q <= 1'b1;
        full_q    <= '0;
        in_q      <= in_open_d ? InDrain : InIdle;
      end
      if (job_q == JobClose) begin
        if (in_q == InDrain && in_beat && s_axis_tlast) in_q <= InIdle;
        if (abort_i) begin  // a second abort: stop waiting for the input's TLAST
          in_q      <= InIdle;
          in_open_q <= 1'b0;
        end
        if (job_d == JobIdle) begin
          busy_q <= 1'b0;
          done_q <= 1'b1;
        end
      end
      if (abort_i && job_q == JobCheck) begin
        busy_q    <= 1'b0;
        done_q    <= 1'b1;
        aborted_q <= 1'b1;
      end
    end
  end

  assign busy_o   = busy_q;
  assign done_o   = done_q;
  assign error_o  = error_q;
  assign cycles_o  = cycles_q;
  assign aborted_o = aborted_q;

endmodule
