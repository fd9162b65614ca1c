"""The `sadm` command: one module per sub-command, shared option helpers in `options`, the parser in
`main`. No command imports another."""

from sadm.cli.main import main

__all__ = ["main"]
