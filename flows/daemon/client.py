"""The `tokenmill` command's side of the daemon: hand the command line to it, or say it cannot.

With a daemon answering at `wire.socket_path()`, a command runs in a process the daemon forks
from its own, which has Prefect, Dask and every step's code imported and a Prefect server and
Dask cluster running (seconds of start-up each), with this process's arguments, folder,
environment and terminal. This process only waits, passes on Ctrl-C and the like, and exits
with the run's exit code.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from tokenmill.flows.daemon import wire

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def forward(argv: list[str]) -> int | None:
    """Run `argv` in the daemon and return its exit code; None where no daemon takes it (none
    running, or this caller's Prefect/Dask settings differ from the daemon's), to run here."""
    if os.environ.get(wire.OFF_ENV, "").lower() in ("off", "0", "false", "no"):
        return None
    try:
        path = wire.socket_path()
    except (KeyError, RuntimeError):  # no home folder to look in: no daemon either
        return None
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        request = {"op": "run", "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                   "executable": sys.executable}
        wire.send(sock, request, [0, 1, 2])
        reader = wire.Reader(sock)
        answer, _ = reader.next()
    except OSError:
        sock.close()
        return None
    if answer is None or "pid" not in answer:
        sock.close()
        if answer is not None and answer.get("note"):
            print(f"tokenmill daemon: {answer['note']}", file=sys.stderr)
        return None
    return _wait(sock, reader, answer["pid"])


def _wait(sock: socket.socket, reader: wire.Reader, pid: int) -> int:
    """Pass signals on to the run's process group until the daemon reports its exit code."""

    def pass_on(signum: int, _frame: object) -> None:
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, pass_on)
    with sock:
        while True:
            try:
                answer, _ = reader.next()
            except InterruptedError:
                continue
            if answer is None:
                print("tokenmill daemon: the daemon stopped before the run ended", file=sys.stderr)
                return 1
            if "exit" in answer:
                return int(answer["exit"])
