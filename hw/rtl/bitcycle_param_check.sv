// bitcycle_param_check: stops elaboration with MSG when FAIL is set. Every module checks its
// parameters through this one place, because the three tools that build the RTL disagree on how:
// Icarus 11 has no elaboration-time $error (a $fatal at time 0 stands in), Verilator prints an
// untyped string parameter only through "%s", and Yosys 0.23 prints a format string verbatim.
// It has no ports and no logic: instantiated as `bitcycle_param_check #(.FAIL(cond), .MSG("..."))
// u_check_x ();`, it costs nothing in synthesis.
module bitcycle_param_check #(
  parameter bit FAIL = 1'b0,
  parameter     MSG  = "bad parameter"
) ();

  if (FAIL) begin : g_fail
`ifdef __ICARUS__
    initial $fatal(1, "%s", MSG);
`elsif VERILATOR
    $error("%s", MSG);
`else
    $error(MSG);
`endif
  end

endmodule
