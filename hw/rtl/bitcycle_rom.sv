// bitcycle_rom: a constant memory with one synchronous read port, contents from a $readmemh image,
// in block RAM or in LUT logic as LUT_LOGIC says. No reset: the output register is data.
//
// The attribute differs by tool because Yosys 0.23 reads rom_style "distributed" as LUTRAM, which
// a ROM cannot map to ("no valid mapping found"), and with no attribute puts a ROM from ~280
// words deep into block RAM; its "logic" is what Vivado calls "distributed" (64 words per LUT6,
// four LUT6s to a slice through MUXF7/MUXF8).
`default_nettype none

module bitcycle_rom #(
  parameter int WIDTH     = 32,
  parameter int DEPTH     = 64,
  parameter bit LUT_LOGIC = 1'b0,  // 1: LUT logic; 0: block RAM
  parameter     FILE      = "",    // $readmemh image: DEPTH lines of WIDTH bits
  localparam int AddrW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
  input  wire logic             clk_i,
  input  wire logic             en_i,
  input  wire logic [AddrW-1:0] addr_i,
  output logic      [WIDTH-1:0] data_o
);

  bitcycle_param_check #(.FAIL(WIDTH < 1 || DEPTH < 1),
      .MSG("bitcycle_rom: WIDTH and DEPTH must be >= 1")) u_check_params ();

  logic [WIDTH-1:0] data_q;
  assign data_o = data_q;

  if (LUT_LOGIC) begin : g_lut
`ifdef YOSYS
    (* rom_style = "logic" *) logic [WIDTH-1:0] rom [DEPTH];
`else
    (* rom_style = "distributed" *) logic [WIDTH-1:0] rom [DEPTH];
`endif
    initial if (FILE != "") $readmemh(FILE, rom);
    always_ff @(posedge clk_i) if (en_i) data_q <= rom[addr_i];
  end else begin : g_block
    (* rom_style = "block", ram_style = "block" *) logic [WIDTH-1:0] rom [DEPTH];
    initial if (FILE != "") $readmemh(FILE, rom);
    always_ff @(posedge clk_i) if (en_i) data_q <= rom[addr_i];
  end

endmodule

`default_nettype wire
