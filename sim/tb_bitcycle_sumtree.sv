// The simulation top of sim/test_bitcycle_sumtree.py: Verilator 5 mis-elaborates a self-recursive
// module when it is the top level and its parameters come from -G (every output reads 0); one
// level of wrapper, with the same parameters and ports, avoids that.
`default_nettype none

module tb_bitcycle_sumtree #(
  parameter int N = 4,
  parameter int W = 3
) (
  input  wire logic [N*W-1:0]          v_i,
  output logic [W+$clog2(N)-1:0]       sum_o
);
  bitcycle_sumtree #(.N(N), .W(W)) u_dut (.v_i, .sum_o);
endmodule

`default_nettype wire
