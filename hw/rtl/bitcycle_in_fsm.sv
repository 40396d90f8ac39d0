// bitcycle_in_fsm: the input side of a job. Takes the input packet's words and writes them where
// they belong: tiles (weight / threshold loads, sign(x) of backward-weight) into the tile
// memories, then integer vectors into the two banks of the vector buffer. A bank is full from its
// vector's last word until the issue sequencer has read it for the last time (rd_release_i).
//
// Packet length: a TLAST before the expected end is a short packet (err_short_o: the job is cut);
// no TLAST at the end is a long one (err_long_o) and is drained to its TLAST. When a job is cut
// (an abort: abort_run_i, while the job runs or in its check) an input packet that has begun is
// drained to its TLAST -- begun here, or waiting at the input while idle -- and abort_i while the
// job closes (close_i) stops that drain. (The words themselves go from the port to the memories directly.)
`default_nettype none

module bitcycle_in_fsm #(
  parameter int SUB_W      = 2,    // word-within-tile counter width
  parameter int BANK_AW    = 10,   // vector-buffer bank address width
  localparam int DimW      = 16
) (
  input  wire logic              clk_i,
  input  wire logic              rst_ni,
  // job control and geometry (bitcycle_cfg_check)
  input  wire logic              start_run_i,   // the job starts: begin a packet
  input  wire logic              abort_run_i,   // the job is aborted (in its check or running)
  input  wire logic              job_end_i,     // the job ends normally
  input  wire logic              close_i,       // the job closes its streams
  input  wire logic              abort_i,
  input  wire logic              tiles_in_i,    // the packet starts with tiles
  input  wire logic              vec_in_i,      // ... and continues with vectors
  input  wire logic [31:0]       load_tiles_i,
  input  wire logic [SUB_W-1:0]  last_sub_i,    // a tile's last word (words per tile - 1)
  input  wire logic [20:0]       vec_words_i,
  input  wire logic [DimW-1:0]   n_vec_i,
  // issue sequencer
  input  wire logic              rd_release_i,  // last read of bank rd_bank_i issued
  input  wire logic              rd_bank_i,
  output logic [1:0]             full_o,        // vector bank holds a complete vector
  // the input stream
  input  wire logic              s_valid_i,
  input  wire logic              s_last_i,
  output logic                   s_ready_o,
  // memory writes and status
  output logic                   tile_we_o,     // a tile word (address tile_o, word sub_o)
  output logic [31:0]            tile_o,
  output logic [SUB_W-1:0]       sub_o,
  output logic                   vbuf_we_o,
  output logic [BANK_AW:0]       vbuf_waddr_o,  // {bank, word}
  output logic                   done_o,        // the whole packet arrived
  output logic                   draining_o,    // waiting for the packet's TLAST
  output logic                   err_short_o,
  output logic                   err_long_o
);

  localparam logic [2:0] InIdle = 3'd0, InTiles = 3'd1, InVec = 3'd2, InDrain = 3'd3, InDone = 3'd4;
  // (binary as written: Yosys' FSM recoding made the next state deeper behind the late checks)
  (* fsm_encoding = "none" *) logic [2:0] in_q;
  logic [2:0]      in_d;
  logic [1:0]      full_q, full_d;
  logic            wbank_q, wbank_d;
  logic [20:0]     waddr_q, waddr_d;        // word within the vector
  logic [31:0]     tile_q, tile_d;
  // what is left after the current word/tile/vector, counted down: the ends are zero tests, not
  // a subtract and a wide compare on the path into the state register
  logic [31:0]     tiles_left_q, tiles_left_d;
  logic [20:0]     words_left_q, words_left_d;
  logic [DimW-1:0] vecs_left_q, vecs_left_d;
  logic [SUB_W-1:0] sub_q, sub_d;
  // ... and whether each count is zero, registered with it (the ends feed the short-packet check,
  // whose cut fans out to the whole engine: no wide zero test in front of it)
  logic            tiles_zero_q, words_zero_q, vecs_zero_q;
  logic            sub_last_q;              // sub_q is a tile's last word
  logic            job_end_q;               // the job ended the cycle before (the next start is
                                            // at least three cycles after its end)
  logic            open_q, open_d;          // a packet has begun and not yet ended
  logic            beat, tiles_end, vec_end, stream_end, err_short, err_long;

  assign s_ready_o  = (in_q == InTiles) || (in_q == InDrain) || (in_q == InVec && !full_q[wbank_q]);
  assign beat       = s_valid_i && s_ready_o;
  assign open_d     = beat ? !s_last_i : open_q;
  assign tiles_end  = sub_last_q && tiles_zero_q;
  assign vec_end    = words_zero_q;
  assign stream_end = (in_q == InTiles && tiles_end && !vec_in_i) ||
                      (in_q == InVec && vec_end && vecs_zero_q);

  // a bank empties when compute has issued its last read of it, fills with a vector's last word
  logic [1:0] full_clr, full_set;
  // (one cycle after the last read: the release comes through the issue decision, late in its
  // cycle; the sequencer reaches this bank again two cycles later at the earliest)
  logic rel_q, rel_bank_q;
  assign full_clr = rel_q ? (2'b01 << rel_bank_q) : 2'b00;
  assign full_set = (beat && in_q == InVec && vec_end) ? (2'b01 << wbank_q) : 2'b00;
  assign full_d   = (start_run_i || abort_run_i || err_short) ? 2'b00 : ((full_q & ~full_clr) | full_set);

  always_comb begin
    in_d    = in_q;
    tile_d  = tile_q;
    sub_d   = sub_q;
    wbank_d = wbank_q;
    waddr_d = waddr_q;
    tiles_left_d = tiles_left_q;
    words_left_d = words_left_q;
    vecs_left_d  = vecs_left_q;
    unique case (in_q)
      InTiles: if (beat) begin
        if (sub_last_q) begin
          sub_d        = '0;
          tile_d       = tile_q + 1;
          tiles_left_d = tiles_left_q - 1;
        end else begin
          sub_d = sub_q + 1'b1;
        end
        if (tiles_end && vec_in_i) in_d = InVec;
      end
      InVec: if (beat) begin
        waddr_d      = waddr_q + 1'b1;
        words_left_d = words_left_q - 1'b1;
        if (vec_end) begin
          waddr_d      = '0;
          words_left_d = vec_words_i - 1'b1;
          wbank_d      = ~wbank_q;
          vecs_left_d  = vecs_left_q - 1'b1;
        end
      end
      InDrain: if (beat && s_last_i) in_d = close_i ? InIdle : InDone;
      default: ;
    endcase
    if (beat && (in_q == InTiles || in_q == InVec) && stream_end) in_d = s_last_i ? InDone : InDrain;
    if (start_run_i) begin
      in_d    = tiles_in_i ? InTiles : InVec;
      tile_d  = '0;
      sub_d   = '0;
      wbank_d = 1'b0;
      waddr_d = '0;
      tiles_left_d = load_tiles_i - 1;
      words_left_d = vec_words_i - 1'b1;
      vecs_left_d  = n_vec_i - 1'b1;
    end
    if (job_end_q)           in_d = InIdle;  // (InDone until then: not ready, nothing moves)
    // a cut: an abort drains a begun packet; a short packet has just ended (with this beat), which
    // this FSM sees itself, without the engine's cut in between (err_short comes only while the
    // job runs: the data states exist only then)
    // (or, idle, its first word waits: the job is aborted in its check, before its start, while the
    // port's skid buffer already holds part of its packet)
    if (abort_run_i)         in_d = (open_d || (in_q == InIdle && s_valid_i)) ? InDrain : InIdle;
    if (err_short)           in_d = InIdle;
    if (close_i && abort_i)  in_d = InIdle;  // a second abort: stop waiting for the TLAST
  end

  assign err_short = beat && (in_q == InTiles || in_q == InVec) && !stream_end && s_last_i;
  assign err_long  = beat && (in_q == InTiles || in_q == InVec) && stream_end && !s_last_i;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      in_q    <= InIdle;
      full_q  <= '0;
      wbank_q <= 1'b0;
      waddr_q <= '0;
      tile_q  <= '0;
      sub_q   <= '0;
      open_q  <= 1'b0;
      tiles_left_q <= '0;
      words_left_q <= '0;
      vecs_left_q  <= '0;
      tiles_zero_q <= 1'b1;
      sub_last_q   <= 1'b0;
      job_end_q    <= 1'b0;
      rel_q        <= 1'b0;
      rel_bank_q   <= 1'b0;
      words_zero_q <= 1'b1;
      vecs_zero_q  <= 1'b1;
    end else begin
      in_q    <= in_d;
      full_q  <= full_d;
      wbank_q <= wbank_d;
      waddr_q <= waddr_d;
      tile_q  <= tile_d;
      sub_q   <= sub_d;
      tiles_left_q <= tiles_left_d;
      words_left_q <= words_left_d;
      vecs_left_q  <= vecs_left_d;
      tiles_zero_q <= (tiles_left_d == '0);
      sub_last_q   <= (sub_d == last_sub_i);  // (last_sub_i is set before the job starts)
      job_end_q    <= job_end_i;
      rel_q        <= rd_release_i;
      rel_bank_q   <= rd_bank_i;
      words_zero_q <= (words_left_d == '0);
      vecs_zero_q  <= (vecs_left_d == '0);
      open_q  <= (close_i && abort_i) ? 1'b0 : open_d;
    end
  end

  assign full_o       = full_q;
  assign tile_we_o    = beat && (in_q == InTiles);
  assign tile_o       = tile_q;
  assign sub_o        = sub_q;
  assign vbuf_we_o    = beat && (in_q == InVec);
  assign vbuf_waddr_o = {wbank_q, BANK_AW'(waddr_q)};
  assign done_o       = (in_q == InDone);
  assign draining_o   = (in_q == InDrain);
  assign err_short_o  = err_short;
  assign err_long_o   = err_long;

endmodule

`default_nettype wire
