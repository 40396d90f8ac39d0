// bitcycle_issue: the issue sequencer. Walks a compute job one plane-chunk per cycle -- chunk
// (inner), plane MSB first, output group, vector (outer) -- and for each beat drives the read
// addresses of the tile memory and the vector buffer (stage 0), then the beat's control for the
// array one cycle later (stage 1). A beat issues when its vector's bank is full and the pipeline is
// not frozen: freeze_i holds the sequencer and its stage-1 beat while a group's first beat (the one
// that restarts the accumulators) would restart accumulators still holding the group before. The group index of a group's last beat (grp_o with last_o) names its thresholds.
`default_nettype none

module bitcycle_issue #(
  parameter int CHUNK_W  = 16,   // plane-chunk width (max(PE, SIMD))
  parameter int TILE_AW  = 8,
  parameter int THR_AW   = 6,
  parameter int BANK_AW  = 10,
  localparam int DimW    = 16,
  localparam int CntW    = $clog2(CHUNK_W + 1)
) (
  input  wire logic               clk_i,
  input  wire logic               rst_ni,
  input  wire logic               start_run_i,
  input  wire logic               stop_i,        // abort or cut: no further beats
  input  wire logic               is_compute_i,
  input  wire logic               trans_i,       // backward-data: transposed tile walk
  input  wire logic [4:0]         bits_i,
  input  wire logic [DimW-1:0]    out_rows_i,
  input  wire logic [DimW-1:0]    red_len_i,
  input  wire logic [DimW-1:0]    n_vec_i,
  input  wire logic [DimW:0]      n_out_i,
  input  wire logic [DimW:0]      n_red_i,
  /* verilator lint_off UNUSEDSIGNAL */
  input  wire logic [DimW:0]      n_cols_i,      // (only its tile-address bits matter)
  /* verilator lint_on UNUSEDSIGNAL */
  input  wire logic [CntW-1:0]    lanes_out_i,
  input  wire logic [CntW-1:0]    chunk_i,
  input  wire logic [1:0]         full_i,        // vector banks (bitcycle_in_fsm)
  input  wire logic               freeze_i,      // pipeline stall: no issue, stage 1 holds
  // stage 0: memory reads
  output logic [TILE_AW-1:0]      tile_raddr_o,
  output logic [THR_AW-1:0]       grp_o,         // output group of the beat at stage 0
  output logic                    last_o,        // a group's last beat issues now
  output logic [BANK_AW:0]        vbuf_raddr_o,
  output logic                    rd_release_o,  // last read of bank rd_bank_o this cycle
  output logic                    rd_bank_o,
  output logic                    active_o,      // beats left to issue
  // stage 1: the beat at the array
  output logic                    s1_valid_o,
  output logic                    s1_first_o,        // first beat of an output group
  output logic [3:0]              s1_plane_o,        // bit-plane index of the beat (MSB first)
  output logic                    s1_msb_o,          // MSB plane of a two's-complement operand
  output logic                    s1_grp_last_o,
  output logic                    s1_vec_last_o,
  output logic                    s1_job_last_o,
  output logic [CHUNK_W-1:0]      s1_en_o,           // reduction elements inside the length
  output logic [CntW-1:0]         s1_out_cnt_o,      // output values of the group
  output logic                    s1_trans_o,
  output logic                    s1_bipolar_o
);

  logic            active_q, active_d;
  logic            rbank_q, rbank_d;
  logic [4:0]      pl_q, pl_d;               // plane, MSB first
  logic [DimW:0]   rc_q, rc_d;               // reduction chunk
  logic [DimW:0]   og_q, og_d;               // output group
  logic [DimW-1:0] rvec_q, rvec_d;           // vector
  logic [DimW-1:0] red_off_q, red_off_d;     // rc * chunk
  logic [DimW-1:0] out_off_q, out_off_d;     // og * lanes_out
  // addresses as wide as the memories: the check keeps every tile of a job inside them
  logic [TILE_AW-1:0] taddr_q, taddr_d;      // tile address of the beat
  logic [TILE_AW-1:0] gbase_q, gbase_d;      // tile address of (group, chunk 0)
  logic [BANK_AW-1:0] raddr_q, raddr_d;      // vector-buffer word of the beat
  logic            grp_first_q, grp_last, vec_last, job_last, issue;

  assign grp_last  = (pl_q == '0) && (rc_q == n_red_i - 1'b1);
  assign vec_last  = grp_last && (og_q == n_out_i - 1'b1);
  assign job_last  = vec_last && (rvec_q == n_vec_i - 1'b1);
  assign issue     = active_q && full_i[rbank_q] && !freeze_i;

  always_comb begin
    active_d  = active_q;
    rbank_d   = rbank_q;
    pl_d      = pl_q;
    rc_d      = rc_q;
    og_d      = og_q;
    rvec_d    = rvec_q;
    red_off_d = red_off_q;
    out_off_d = out_off_q;
    taddr_d   = taddr_q;
    gbase_d   = gbase_q;
    raddr_d   = raddr_q;
    if (issue) begin
      raddr_d = raddr_q + 1'b1;
      if (rc_q != n_red_i - 1'b1) begin            // next chunk of this plane
        rc_d      = rc_q + 1'b1;
        red_off_d = red_off_q + DimW'(chunk_i);
        taddr_d   = taddr_q + (trans_i ? TILE_AW'(n_cols_i) : TILE_AW'(1));
      end else begin
        rc_d      = '0;
        red_off_d = '0;
        taddr_d   = gbase_q;
        if (pl_q != '0) begin                      // next plane of this group
          pl_d = pl_q - 1'b1;
        end else begin                             // next output group
          pl_d      = bits_i - 1'b1;
          raddr_d   = '0;
          og_d      = og_q + 1'b1;
          out_off_d = out_off_q + DimW'(lanes_out_i);
          gbase_d   = gbase_q + (trans_i ? TILE_AW'(1) : TILE_AW'(n_cols_i));
          taddr_d   = gbase_q + (trans_i ? TILE_AW'(1) : TILE_AW'(n_cols_i));
          if (og_q == n_out_i - 1'b1) begin        // next vector (other bank)
            og_d      = '0;
            out_off_d = '0;
            gbase_d   = '0;
            taddr_d   = '0;
            rbank_d   = ~rbank_q;
            rvec_d    = rvec_q + 1'b1;
            if (rvec_q == n_vec_i - 1'b1) active_d = 1'b0;
          end
        end
      end
    end
    if (start_run_i) begin
      active_d  = is_compute_i;
      rbank_d   = 1'b0;
      pl_d      = bits_i - 1'b1;
      rc_d      = '0;
      og_d      = '0;
      rvec_d    = '0;
      red_off_d = '0;
      out_off_d = '0;
      taddr_d   = '0;
      gbase_d   = '0;
      raddr_d   = '0;
    end
    if (stop_i) active_d = 1'b0;
  end

  // lane enables: the elements left in the reduction (one subtract), clamped to the chunk
  logic [DimW-1:0] red_rem, out_rem;
  logic [CntW-1:0] en_lim;
  assign red_rem = red_len_i - red_off_q;    // > 0 while beats issue
  assign out_rem = out_rows_i - out_off_q;
  assign en_lim  = (red_rem < DimW'(chunk_i)) ? CntW'(red_rem) : chunk_i;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      active_q   <= 1'b0;
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
      grp_first_q <= 1'b0;  // (a group's first beat follows its last, or the start)
      s1_valid_o <= 1'b0;
    end else begin
      active_q   <= active_d;
      s1_valid_o <= !stop_i && (freeze_i ? s1_valid_o : issue);
      if (!stop_i) begin
        rbank_q   <= rbank_d;
        pl_q      <= pl_d;
        rc_q      <= rc_d;
        og_q      <= og_d;
        rvec_q    <= rvec_d;
        red_off_q <= red_off_d;
        out_off_q <= out_off_d;
        taddr_q   <= taddr_d;
        gbase_q   <= gbase_d;
        raddr_q   <= raddr_d;
        grp_first_q <= start_run_i || (issue ? grp_last : grp_first_q);
      end
    end
  end

  // stage-1 control: no reset (qualified by s1_valid_o)
  always_ff @(posedge clk_i) begin
    if (issue) begin
      s1_first_o       <= grp_first_q;
      s1_plane_o       <= pl_q[3:0];
      s1_msb_o         <= (pl_q == bits_i - 1'b1) && (bits_i != 5'd1);
      s1_grp_last_o    <= grp_last;
      s1_vec_last_o    <= vec_last;
      s1_job_last_o    <= job_last;
      for (int j = 0; j < CHUNK_W; j++) s1_en_o[j] <= (CntW'(j) < en_lim);
      s1_out_cnt_o <= (out_rem < DimW'(lanes_out_i)) ? CntW'(out_rem) : lanes_out_i;
    end
    s1_trans_o   <= trans_i;
    s1_bipolar_o <= (bits_i == 5'd1);
  end

  assign tile_raddr_o = taddr_q;
  assign grp_o        = THR_AW'(og_q);
  // (not gated by stop_i: a stop clears the engine's pending count itself, and stop_i comes
  // late in the cycle, from the input FSM's short-packet check)
  assign last_o       = issue && grp_last;
  assign vbuf_raddr_o = {rbank_q, raddr_q};
  assign rd_release_o = issue && vec_last;  // (a stop empties the banks itself: the cut clears them)
  assign rd_bank_o    = rbank_q;
  assign active_o     = active_q;

endmodule

`default_nettype wire
