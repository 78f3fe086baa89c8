"""The `tokenmill` executable: a command runs in the daemon when one answers (`tokenmill daemon start`),
else in this process. Only the daemon client is imported first: through it a command starts in
milliseconds, against seconds for Prefect and the steps' code."""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] != ["daemon"]:
        from tokenmill.flows.daemon.client import forward

        code = forward(argv)
        if code is not None:
            raise SystemExit(code)
    from tokenmill.flows.cli import main as run_here

    run_here()
