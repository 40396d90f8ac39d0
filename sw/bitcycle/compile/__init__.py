"""Brevitas → QONNX → FINN dataflow → HLS/RTL project and driver metadata."""
