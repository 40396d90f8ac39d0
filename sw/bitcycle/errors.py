"""The one exception type that reaches the user as a one-line message (CLI exit code 2)."""


class BitCycleError(ValueError):
    """Bad input or a missing tool: the message names the problem and the fix."""


class ToolNotFound(BitCycleError):
    """A vendor or simulator tool is not on PATH."""
