// bitcycle_mvau: one FINN matrix layer (MVAU stream formats and semantics), bit-serial.
//
//   s = W · x,  W ∈ {−1,+1}^{MH×MW} (weight image: 1 = +1),  s saturated to ACC_BITS (signed)
//   NTHR > 0:  y = Σ_k [s ≥ T_k] + ACT_VAL        (FINN's MultiThreshold)
//   NTHR = 0:  y = s                              (noActivation: raw sums, OBITS >= ACC_BITS)
//
// x is walked bit-plane by bit-plane, MSB first: the run-time width bits_i (1..BITS_MAX, read at
// the start of each vector) sets the cost, bits_i · (MH/PE) · (MW/SIMD) cycles per vector.
// bits_i = 1: x holds bipolar codes (0 ↦ −1, 1 ↦ +1), XNOR-popcount. bits_i ≥ 2: x is a
// bits_i-bit two's-complement integer (IBITS-bit elements sign- or zero-extended), the MSB plane
// weighs −2^(bits_i−1); each plane's chunk sums add times their weight ±2^p (positional, one
// DSP48E1 multiply-accumulate per lane in a multi-bit layer).
//
// Streams: in, MW/SIMD beats of SIMD elements (element j at [j·IBITS +: IBITS]); out, MH/PE beats
// of PE elements (element i at [i·OBITS +: OBITS]), one beat per cycle, all PE lanes thresholded
// in parallel. Input collection (double buffer), compute and output (FIFO) overlap.
// Pipeline: issue (weight ROM + input buffer reads) → plane popcounts → accumulate → threshold.
`default_nettype none

module bitcycle_mvau #(
  parameter int MW       = 64,
  parameter int MH       = 8,
  parameter int PE       = 4,     // divides MH
  parameter int SIMD     = 16,    // divides MW
  parameter int IBITS    = 1,     // input element width
  parameter int ISIGNED  = 0,     // 1: two's-complement input elements
  parameter int BITS_MAX = 8,     // largest run-time bits_i
  parameter int OBITS    = 1,     // output element width
  parameter int ACC_BITS = 16,    // signed saturation width of s (<= 32)
  parameter int NTHR     = 1,     // thresholds per channel; 0: raw sums
  parameter int ACT_VAL  = 0,     // added to the threshold count
  parameter int OUT_DEPTH = 8,    // output FIFO beats (power of two)
  parameter int THR_INIT = 0,     // 1: T_FILE holds -(T + MW), the accumulator's start (see below)
  parameter int WROM_LUT_PE = 0,  // top PE lanes whose weights are LUT logic whatever the size
  parameter     W_FILE   = "",    // $readmemh image: MH/PE·MW/SIMD lines of (PE-WROM_LUT_PE)·SIMD bits
  parameter     WL_FILE  = "",    // the same for the top WROM_LUT_PE lanes (W_FILE: the others)
  parameter     T_FILE   = "",    // $readmemh image: MH/PE lines of PE·NTHR·(ACC_BITS+1) bits
  localparam int InW     = ((SIMD * IBITS + 7) / 8) * 8,
  localparam int OutW    = ((PE * OBITS + 7) / 8) * 8
) (
  input  wire logic            clk_i,
  input  wire logic            rst_ni,
  input  wire logic [4:0]      bits_i,
  input  wire logic [InW-1:0]  s_axis_tdata,
  input  wire logic            s_axis_tvalid,
  output logic                 s_axis_tready,
  output logic [OutW-1:0]      m_axis_tdata,
  output logic                 m_axis_tvalid,
  input  wire logic            m_axis_tready
);
  localparam int SF    = MW / SIMD;
  localparam int NF    = MH / PE;
  localparam int SfW   = (SF > 1) ? $clog2(SF) : 1;
  localparam int NfW   = (NF > 1) ? $clog2(NF) : 1;
  localparam int WaW   = (SF * NF > 1) ? $clog2(SF * NF) : 1;
  localparam int PcW   = $clog2(SIMD + 1);          // popcount
  localparam int PsW   = PcW + 2;                   // signed plane sum, |s| <= SIMD
  // A layer built for 1-bit inputs (BITS_MAX = 1) has one bipolar plane per chunk: its mode and
  // plane logic are constants, and its sum needs only the bits of ±MW.
  localparam bit OneBit = BITS_MAX == 1;
  localparam int SumW  = OneBit ? $clog2(MW + 1) + 1 : $clog2(MW + 1) + BITS_MAX + 2;
  // |s| <= MW·2^(BITS_MAX-1) (a bits-bit two's-complement plane walk, bipolar ±1): saturation can
  // occur only where that bound needs more than ACC_BITS (compile sizes ACC_BITS so it never does)
  localparam int FinalW = $clog2(MW * (64'd1 << (BITS_MAX - 1)) + 1) + 1;
  localparam bit Sat    = FinalW > ACC_BITS;
  localparam int TW    = ACC_BITS + 1;              // thresholds and saturated sums
  localparam int NT    = (NTHR > 0) ? NTHR : 1;
  localparam int CntW  = $clog2(NT + 1) + 1;
  localparam int CrW   = $clog2(OUT_DEPTH + 1);

  bitcycle_param_check #(.FAIL(SIMD < 1 || PE < 1 || MW % SIMD != 0 || MH % PE != 0),
      .MSG("bitcycle_mvau: SIMD must divide MW and PE must divide MH")) u_check_fold ();
  bitcycle_param_check #(.FAIL(IBITS < 1 || IBITS > BITS_MAX || BITS_MAX > 16),
      .MSG("bitcycle_mvau: need 1 <= IBITS <= BITS_MAX <= 16")) u_check_bits ();
  bitcycle_param_check #(.FAIL(ACC_BITS < 2 || ACC_BITS > 32 || NTHR < 0 || (NTHR == 0 && OBITS < ACC_BITS)
                               || (NTHR > 0 && NTHR >= (1 << OBITS))),
      .MSG("bitcycle_mvau: need 2 <= ACC_BITS <= 32; raw sums need OBITS >= ACC_BITS; thresholds need NTHR < 2^OBITS"))
      u_check_out ();
  bitcycle_param_check #(.FAIL(THR_INIT != 0 && (!OneBit || NTHR != 1 || Sat)),
      .MSG("bitcycle_mvau: THR_INIT needs BITS_MAX = 1, NTHR = 1 and ACC_BITS >= the bit length of ±MW"))
      u_check_init ();
  bitcycle_param_check #(.FAIL(WROM_LUT_PE < 0 || WROM_LUT_PE > PE),
      .MSG("bitcycle_mvau: WROM_LUT_PE counts PE lanes: 0 <= WROM_LUT_PE <= PE")) u_check_wrom ();
  bitcycle_param_check #(.FAIL(OUT_DEPTH < 2 || (OUT_DEPTH & (OUT_DEPTH - 1)) != 0),
      .MSG("bitcycle_mvau: OUT_DEPTH must be a power of two >= 2")) u_check_depth ();

  // ---------------------------------------------------------------- input buffer
  logic             rd_full, issue, release_v;
  logic [SfW-1:0]   sf_q;
  logic [InW-1:0]   x1;
  bitcycle_mvau_inbuf #(.SF(SF), .WIDTH(InW)) u_inbuf (
    .clk_i, .rst_ni, .s_axis_tdata, .s_axis_tvalid, .s_axis_tready,
    .rd_full_o(rd_full), .rd_en_i(issue), .rd_chunk_i(sf_q), .rd_release_i(release_v), .rd_data_o(x1)
  );

  // ---------------------------------------------------------------- issue sequencer
  logic [4:0]     pidx_q, bits_q, cur_bits;
  logic [NfW-1:0] nf_q;
  logic [WaW-1:0] waddr_q, wbase_q;
  logic [CrW-1:0] reserved_q;
  logic           group_start, group_end, plane_end, out_pop;

  always_comb begin
    cur_bits = bits_q;
    if (sf_q == '0 && pidx_q == '0 && nf_q == '0) begin  // first issue of a vector: take bits_i
      cur_bits = bits_i;
      if (bits_i == 5'd0) cur_bits = 5'd1;
      if (bits_i > 5'(BITS_MAX)) cur_bits = 5'(BITS_MAX);
    end
    if (BITS_MAX == 1) cur_bits = 5'd1;  // a constant, so the plane logic folds away
  end
  assign group_start = sf_q == '0 && pidx_q == '0;
  assign plane_end   = sf_q == SfW'(SF - 1);
  assign group_end   = plane_end && (OneBit || pidx_q == cur_bits - 5'd1);
  assign issue       = rd_full && (!group_start || reserved_q < CrW'(OUT_DEPTH));
  assign release_v   = issue && group_end && nf_q == NfW'(NF - 1);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      sf_q <= '0; pidx_q <= '0; nf_q <= '0; bits_q <= 5'd1; waddr_q <= '0; wbase_q <= '0; reserved_q <= '0;
    end else begin
      reserved_q <= reserved_q + CrW'(issue && group_start) - CrW'(out_pop);
      if (issue) begin
        bits_q <= cur_bits;
        if (!plane_end) begin
          sf_q <= sf_q + 1'b1;
          waddr_q <= waddr_q + 1'b1;
        end else begin
          sf_q <= '0;
          if (!group_end) begin
            pidx_q <= pidx_q + 1'b1;
            waddr_q <= wbase_q;
          end else begin
            pidx_q <= '0;
            nf_q <= (nf_q == NfW'(NF - 1)) ? '0 : nf_q + 1'b1;
            wbase_q <= (nf_q == NfW'(NF - 1)) ? '0 : WaW'(waddr_q + 1'b1);
            waddr_q <= (nf_q == NfW'(NF - 1)) ? '0 : WaW'(waddr_q + 1'b1);
          end
        end
      end
    end
  end

  // weight ROM, synchronous read. The lanes below PE - WROM_LUT_PE: block RAM from 8 kbit up
  // (shallow wide ROMs would otherwise go to LUTs), LUT logic below. The top WROM_LUT_PE lanes
  // (compile's folding, when the block RAM left cannot feed a layer's PE·SIMD bits per cycle):
  // LUT logic, from their own image WL_FILE.
  localparam int LutPe = WROM_LUT_PE;
  localparam int BlkPe = PE - WROM_LUT_PE;
  logic [PE*SIMD-1:0] w1_q;
  if (BlkPe > 0) begin : g_wrom_block_lanes
    bitcycle_rom #(.WIDTH(BlkPe * SIMD), .DEPTH(SF * NF), .LUT_LOGIC(SF * NF * BlkPe * SIMD < 8192),
                   .FILE(W_FILE)) u_wrom (
      .clk_i, .en_i(issue), .addr_i(waddr_q), .data_o(w1_q[BlkPe*SIMD-1:0]));
  end
  if (LutPe > 0) begin : g_wrom_lut_lanes
    bitcycle_rom #(.WIDTH(LutPe * SIMD), .DEPTH(SF * NF), .LUT_LOGIC(1'b1), .FILE(WL_FILE)) u_wrom (
      .clk_i, .en_i(issue), .addr_i(waddr_q), .data_o(w1_q[PE*SIMD-1:BlkPe*SIMD]));
  end

  // ---------------------------------------------------------------- stage 1: plane popcounts
  logic           v1_q, first_chunk1_q, first_plane1_q, neg1_q, bip1_q, end1_q;
  logic [4:0]     plane1_q;
  logic [NfW-1:0] nf1_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      v1_q <= 1'b0; first_chunk1_q <= 1'b0; first_plane1_q <= 1'b0; neg1_q <= 1'b0; bip1_q <= 1'b0;
      end1_q <= 1'b0; plane1_q <= '0; nf1_q <= '0;
    end else begin
      v1_q           <= issue;
      first_chunk1_q <= sf_q == '0;
      first_plane1_q <= OneBit || pidx_q == '0;
      neg1_q         <= !OneBit && pidx_q == '0 && cur_bits >= 5'd2;
      bip1_q         <= OneBit || cur_bits == 5'd1;
      end1_q         <= group_end;
      plane1_q       <= cur_bits - 5'd1 - pidx_q;
      nf1_q          <= nf_q;
    end
  end

  // A layer built for 1-bit inputs only ever multiplies bipolar codes: its products are XNORs
  // fixed at build time, which lets three of them share one LUT6 per count bit.
  localparam int DotMode = (BITS_MAX == 1) ? 1 : 0;
  logic bip1;
  assign bip1 = OneBit || bip1_q;   // a constant in a 1-bit layer (its register resets to 0)
  logic [SIMD-1:0]         b1;      // bit plane1 of each element
  logic [PcW-1:0]          pc1 [PE];
  logic [PcW-1:0]          pb1;
  logic signed [PsW-1:0]   s1 [PE];
  always_comb begin
    for (int j = 0; j < SIMD; j++) begin
      b1[j] = (ISIGNED != 0) ? x1[j * IBITS + IBITS - 1] : 1'b0;  // extension past IBITS
      for (int k = 0; k < IBITS; k++) begin
        if (plane1_q == 5'(k)) b1[j] = x1[j * IBITS + k];
      end
    end
  end
  bitcycle_popcount #(.N(SIMD)) u_pop_b (.v_i(b1), .n_o(pb1));
  for (genvar i = 0; i < PE; i++) begin : g_lane
    bitcycle_dotcount #(.N(SIMD), .MODE(DotMode)) u_dot (
      .w_i(w1_q[i * SIMD +: SIMD]), .x_i(b1), .xnor_i(bip1), .n_o(pc1[i])
    );
    // w·x over the chunk: 2·popcount − SIMD (bipolar) or 2·popcount(w∧b) − popcount(b)
    // (THR_INIT: 2·popcount, the −SIMD of every chunk is in the start value)
    assign s1[i] = (THR_INIT != 0) ? $signed({1'b0, pc1[i], 1'b0})
                 : $signed({1'b0, pc1[i], 1'b0}) - (bip1 ? PsW'(SIMD) : $signed({2'b00, pb1}));
  end

  // ---------------------------------------------------------------- stage 2: accumulate
  // Positional accumulation: the plane with index p adds its chunk sum times c = 2^p, or -2^p for
  // a two's-complement MSB plane (a 1-bit layer: c = 1). In a multi-bit layer that is a
  // multiply-accumulate with the coefficient shared by all lanes: one DSP48E1 per lane, with the
  // sum and coefficient registers as its A/B registers and acc_q as P (datapath registers carry no
  // reset, which would keep them out of the DSP; a group's first beat starts from 0).
  localparam int CoefW = 18;                          // DSP48E1 B port: ±2^15 fits
  logic                    v2_q, first2_q, end2_q;
  logic [NfW-1:0]          nf2_q;
  logic signed [PsW-1:0]   s2_q [PE];
  logic signed [CoefW-1:0] coef2_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      v2_q <= 1'b0; first2_q <= 1'b0; end2_q <= 1'b0; nf2_q <= '0;
    end else begin
      v2_q <= v1_q;
      if (v1_q) begin
        first2_q <= first_chunk1_q && first_plane1_q;
        end2_q <= end1_q; nf2_q <= nf1_q;
      end
    end
  end
  always_ff @(posedge clk_i) begin
    if (v1_q) begin
      for (int i = 0; i < PE; i++) s2_q[i] <= s1[i];
      coef2_q <= neg1_q ? -(CoefW'(1) << plane1_q) : (CoefW'(1) << plane1_q);
    end
  end

  // THR_INIT: a 1-bit layer with one threshold compares nothing. Its accumulator starts each
  // group at -(T + MW) (compile writes that to T_FILE) and adds 2·popcount per chunk, so it ends
  // at 2·Σpopcount − MW − T = s − T, and the output bit is its sign: s ≥ T ⇔ acc ≥ 0.
  // (|s − T| <= MW + 2^(ACC_BITS−1) < 2^ACC_BITS: TW bits hold it, and every partial sum)
  localparam int AccW = (THR_INIT != 0) ? TW : SumW;
  logic [PE*TW-1:0] init2_q;                          // the start values (THR_INIT)

  // the saturation bounds, used only when Sat (else they would not fit AccW bits)
  localparam logic signed [AccW-1:0] AccMax = Sat ? AccW'((64'sd1 <<< (ACC_BITS - 1)) - 64'sd1) : '0;
  localparam logic signed [AccW-1:0] AccMin = Sat ? AccW'(-(64'sd1 <<< (ACC_BITS - 1))) : '0;
  logic signed [AccW-1:0] acc_q [PE];
  logic signed [AccW-1:0] acc_d [PE];
  logic signed [AccW-1:0] base2 [PE];
  logic signed [TW-1:0]   sat_d [PE];
  always_comb begin
    for (int i = 0; i < PE; i++) begin
      base2[i] = !first2_q ? acc_q[i] : (THR_INIT != 0) ? AccW'($signed(init2_q[i * TW +: TW])) : '0;
      if (OneBit) acc_d[i] = base2[i] + AccW'(s2_q[i]);
      else        acc_d[i] = base2[i] + AccW'(s2_q[i] * coef2_q);
      sat_d[i] = TW'(acc_d[i]);
      if (Sat && acc_d[i] > AccMax) sat_d[i] = TW'(AccMax);
      if (Sat && acc_d[i] < AccMin) sat_d[i] = TW'(AccMin);
    end
  end
  always_ff @(posedge clk_i) begin
    if (v2_q) for (int i = 0; i < PE; i++) acc_q[i] <= acc_d[i];
  end

  // ---------------------------------------------------------------- stage 3: thresholds
  logic                 v3_q;
  logic signed [TW-1:0] res_q [PE];
  logic [PE*NT*TW-1:0]  thr_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) v3_q <= 1'b0;
    else         v3_q <= v2_q && end2_q;
  end
  always_ff @(posedge clk_i) begin
    if (v2_q && end2_q) for (int i = 0; i < PE; i++) res_q[i] <= sat_d[i];
  end

  if (NTHR > 0) begin : g_trom
    logic [PE*NT*TW-1:0] trom [NF];
    initial if (T_FILE != "") $readmemh(T_FILE, trom);
    if (THR_INIT != 0) begin : g_start
      // read with the group's first beat in stage 1, so it is there for its first accumulate
      always_ff @(posedge clk_i) if (v1_q && first_chunk1_q && first_plane1_q) init2_q <= trom[nf1_q];
      assign thr_q = '0;
    end else begin : g_compare
      always_ff @(posedge clk_i) if (v2_q && end2_q) thr_q <= trom[nf2_q];
      assign init2_q = '0;
    end
  end else begin : g_no_trom
    assign thr_q = '0;
    assign init2_q = '0;
  end

  logic [OutW-1:0]        beat;
  logic signed [CntW-1:0] cnt3 [PE];
  always_comb begin
    beat = '0;
    for (int i = 0; i < PE; i++) begin
      cnt3[i] = CntW'(ACT_VAL);
      for (int k = 0; k < NT; k++) begin
        if (THR_INIT != 0) begin
          if (!res_q[i][TW-1]) cnt3[i] = cnt3[i] + 1'b1;   // s − T ≥ 0
        end else if (res_q[i] >= $signed(thr_q[(i * NT + k) * TW +: TW])) cnt3[i] = cnt3[i] + 1'b1;
      end
      // raw sums: the saturated sum, sign-extended; thresholds: the count
      beat[i * OBITS +: OBITS] = (NTHR == 0) ? OBITS'(res_q[i]) : OBITS'(cnt3[i]);
    end
  end

  // ---------------------------------------------------------------- output FIFO
  // a slot is reserved per output beat before it is computed, so a write never meets a full
  // FIFO: its TREADY (not full) is left unused
  logic fifo_ready;
  assign out_pop = m_axis_tvalid && m_axis_tready;
  bitcycle_axis_fifo #(.WIDTH(OutW), .DEPTH(OUT_DEPTH)) u_out (
    .ap_clk(clk_i), .ap_rst_n(rst_ni),
    .in0_V_TDATA(beat), .in0_V_TVALID(v3_q), .in0_V_TREADY(fifo_ready),
    .out0_V_TDATA(m_axis_tdata), .out0_V_TVALID(m_axis_tvalid), .out0_V_TREADY(m_axis_tready)
  );

  logic unused;
  assign unused = ^{fifo_ready, nf2_q};

endmodule

`default_nettype wire
