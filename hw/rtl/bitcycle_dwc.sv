// bitcycle_dwc: AXI4-Stream width converter, IBITS → OBITS bits per beat, as one continuous bit
// stream (bit 0 of a beat first): the function of FINN's StreamingDataWidthConverter_rtl, whose
// finn-rtllib core (vpc.sv) crashes Verilator 5.048 at some widths (e.g. 4 → 512). Ports are
// padded to whole bytes, as FINN's streams; input padding bits are ignored, output padding is 0.
// Three structures, chosen at elaboration:
//   * OBITS = R·IBITS (gather): R−1 input beats into slots, the R-th completes the output register;
//   * IBITS = R·OBITS (scatter): one input beat in a register, shifted out OBITS bits per beat;
//   * otherwise: a bit buffer of IBITS + OBITS + max(IBITS, OBITS) bits, input appended at its fill level.
// One beat per cycle on the faster side; TVALID never drops and TDATA never changes before its
// handshake (the output is a register, or a register's low bits that move only on a handshake).
`default_nettype none

module bitcycle_dwc #(
  parameter int IBITS = 8,
  parameter int OBITS = 8,
  localparam int IW = (IBITS + 7) / 8 * 8,
  localparam int OW = (OBITS + 7) / 8 * 8
) (
  input  wire logic          ap_clk,
  input  wire logic          ap_rst_n,
  /* verilator lint_off UNUSEDSIGNAL */  // the byte padding above IBITS carries nothing
  input  wire logic [IW-1:0] in0_V_TDATA,
  /* verilator lint_on UNUSEDSIGNAL */
  input  wire logic          in0_V_TVALID,
  output logic               in0_V_TREADY,
  output logic [OW-1:0]      out0_V_TDATA,
  output logic               out0_V_TVALID,
  input  wire logic          out0_V_TREADY
);

  bitcycle_param_check #(.FAIL(IBITS < 1 || OBITS < 1),
      .MSG("bitcycle_dwc: IBITS and OBITS must be >= 1")) u_check_params ();

  // the widths below, kept legal for bad parameters so that the check above is what a tool reports
  localparam int IB = (IBITS < 1) ? 1 : IBITS;
  localparam int OB = (OBITS < 1) ? 1 : OBITS;
  localparam int OP = (OW < OB) ? OB : OW;

  logic [IB-1:0] idat;
  logic [OB-1:0] odat;
  logic          in_fire, out_fire;

  assign idat          = in0_V_TDATA[IB-1:0];
  assign out0_V_TDATA  = OP'(odat);  // zero-padded to whole bytes
  assign in_fire       = in0_V_TVALID && in0_V_TREADY;
  assign out_fire      = out0_V_TVALID && out0_V_TREADY;

  if (OB % IB == 0) begin : g_gather
    localparam int R  = OB / IB;
    localparam int SW = (R > 1) ? $clog2(R) : 1;
    logic [OB-1:0] slots_q, slots_d, out_q, out_d;
    logic [SW-1:0]    slot_q, slot_d;
    logic             valid_q, valid_d, last;

    assign last          = slot_q == SW'(R - 1);
    assign in0_V_TREADY  = !last || !valid_q || out0_V_TREADY;  // the last slot needs the output free
    assign out0_V_TVALID = valid_q;
    assign odat          = out_q;

    always_comb begin
      slots_d = slots_q;
      slot_d  = slot_q;
      out_d   = out_q;
      valid_d = valid_q && !out_fire;
      if (in_fire) begin
        if (last) begin
          out_d   = slots_q;
          out_d[OB-1 -: IB] = idat;
          valid_d = 1'b1;
          slot_d  = '0;
        end else begin
          for (int k = 0; k < R - 1; k++) begin  // a decoder: slot k takes the beat
            if (slot_q == SW'(k)) slots_d[k * IB +: IB] = idat;
          end
          slot_d = slot_q + 1'b1;
        end
      end
    end

    always_ff @(posedge ap_clk or negedge ap_rst_n) begin
      if (!ap_rst_n) begin
        slots_q <= '0;
        slot_q  <= '0;
        out_q   <= '0;
        valid_q <= 1'b0;
      end else begin
        slots_q <= slots_d;
        slot_q  <= slot_d;
        out_q   <= out_d;
        valid_q <= valid_d;
      end
    end
  end else if (IB % OB == 0) begin : g_scatter
    localparam int R  = IB / OB;
    localparam int SW = (R > 1) ? $clog2(R) : 1;
    logic [IB-1:0] data_q, data_d;
    logic [SW-1:0]    slot_q, slot_d;
    logic             full_q, full_d, last;

    assign last          = slot_q == SW'(R - 1);
    assign in0_V_TREADY  = !full_q || (last && out0_V_TREADY);  // reload as the last slice leaves
    assign out0_V_TVALID = full_q;
    assign odat          = data_q[OB-1:0];

    always_comb begin
      data_d = data_q;
      slot_d = slot_q;
      full_d = full_q;
      if (out_fire) begin
        data_d = data_q >> OB;
        slot_d = last ? '0 : slot_q + 1'b1;
        full_d = !last;
      end
      if (in_fire) begin
        data_d = idat;
        slot_d = '0;
        full_d = 1'b1;
      end
    end

    always_ff @(posedge ap_clk or negedge ap_rst_n) begin
      if (!ap_rst_n) begin
        data_q <= '0;
        slot_q <= '0;
        full_q <= 1'b0;
      end else begin
        data_q <= data_d;
        slot_q <= slot_d;
        full_q <= full_d;
      end
    end
  end else begin : g_bitbuf
    // room for a beat whenever the stream flows at full rate: the fill before an output leaves
    // reaches OB - 1 + IB, and a wide input must land before the fill drops below OB
    localparam int BW = IB + OB + ((IB > OB) ? IB : OB);
    localparam int CW = $clog2(BW + 1);
    logic [BW-1:0] buf_q, buf_d, kept;
    logic [CW-1:0] fill_q, fill_d, kept_fill;

    assign out0_V_TVALID = fill_q >= CW'(OB);
    assign in0_V_TREADY  = fill_q <= CW'(BW - IB);  // room for IB more bits, whatever the output does
    assign odat          = buf_q[OB-1:0];
    assign kept          = out_fire ? buf_q >> OB : buf_q;
    assign kept_fill     = out_fire ? fill_q - CW'(OB) : fill_q;

    always_comb begin
      buf_d  = kept;
      fill_d = kept_fill;
      if (in_fire) begin
        buf_d  = kept | (BW'(idat) << kept_fill);  // bits above the fill level are 0
        fill_d = kept_fill + CW'(IB);
      end
    end

    always_ff @(posedge ap_clk or negedge ap_rst_n) begin
      if (!ap_rst_n) begin
        buf_q  <= '0;
        fill_q <= '0;
      end else begin
        buf_q  <= buf_d;
        fill_q <= fill_d;
      end
    end
  end

endmodule

`default_nettype wire
