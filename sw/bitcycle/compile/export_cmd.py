"""`bitcycle export`: checkpoint → QONNX (integer pixel input, integer logits) in build/<model>/qonnx.onnx."""
from bitcycle.compile.commands import add_export_arguments as add_arguments  # noqa: F401
from bitcycle.compile.commands import run_export as run  # noqa: F401
