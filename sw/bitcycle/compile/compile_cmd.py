"""`bitcycle compile`: checkpoint → FINN dataflow with BitCycle's engine layers → build/<model>/ (stops before the vendor tools)."""
from bitcycle.compile.commands import add_compile_arguments as add_arguments  # noqa: F401
from bitcycle.compile.commands import run_compile as run  # noqa: F401
