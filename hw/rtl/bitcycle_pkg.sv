// bitcycle_pkg: job modes, output-stage selects and error-register bits of the BitCycle engine.
// The register map (hw/regs/bitcycle.rdl) and bitcycle.golden.stream use the same codes.
package bitcycle_pkg;

  typedef enum logic [2:0] {
    ModeForward        = 3'd0,  // y  = W  · x
    ModeBackwardData   = 3'd1,  // dx = Wᵀ · dy   (transposed weight-memory access)
    ModeBackwardWeight = 3'd2,  // dW = dy · sign(x)ᵀ (sign(x) streamed in first)
    ModeLoadWeights    = 3'd3,  // W tiles → weight memory
    ModeLoadThresholds = 3'd4   // per-channel thresholds → threshold memory
  } mode_e;

  typedef enum logic [1:0] {
    OutRaw       = 2'd0,  // sum saturated to acc_bits
    OutClip8     = 2'd1,  // clamp(sat >>> clip_shift, -128, 127)
    OutThreshold = 2'd2   // number of channel thresholds reached (forward only)
  } out_sel_e;

  localparam int ErrW = 8;
  localparam int ErrBadMode    = 0;  // MODE holds an unknown code
  localparam int ErrBadBits    = 1;  // BITS outside 1..16
  localparam int ErrBadShape   = 2;  // M/K/N zero, or too large for a memory
  localparam int ErrBadAccBits = 3;  // ACC_BITS outside 2..ACC_BITS parameter
  localparam int ErrOverflow   = 4;  // len · 2^(bits-1) could overflow the accumulator
  localparam int ErrBadOutSel  = 5;  // reserved OUT_SEL, or thresholds outside forward
  localparam int ErrShort      = 6;  // TLAST before the expected end: job aborted
  localparam int ErrLong       = 7;  // no TLAST at the expected end: rest drained

endpackage
