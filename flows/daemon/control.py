"""`tokenmill daemon start | stop | status`: the daemon's process, started detached and asked over its socket."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tokenmill.corpus.store.errors import ServiceError
from tokenmill.corpus.store.runtime import DaskSettings
from tokenmill.flows.daemon import wire

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


def status() -> dict[str, Any] | None:
    """What the running daemon says of itself; None when none answers."""
    return wire.request({"op": "status"})


def log_path(path: Path) -> Path:
    return path.with_suffix(".log")


def start(dask: DaskSettings, foreground: bool = False) -> dict[str, Any]:
    """Start a daemon (in this process when `foreground`) and return its status once it answers."""
    running = status()
    if running is not None:
        return running
    path = wire.socket_path()
    command = [sys.executable, "-m", "tokenmill.flows.daemon.server", str(path), dask.model_dump_json()]
    if foreground:
        raise SystemExit(subprocess.call(command))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_path(path), "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = status()
        if answer is not None:
            return answer
        if process.poll() is not None:
            raise ServiceError(f"the daemon exited with code {process.returncode} while starting; "
                               f"its log: {log_path(path)}")
        time.sleep(0.2)
    process.terminate()
    raise ServiceError(f"the daemon did not answer within {START_TIMEOUT_S:g} s; its log: {log_path(path)}")


def stop() -> dict[str, Any] | None:
    """Ask the daemon to stop (its running commands are stopped too) and wait until it is gone."""
    answer = wire.request({"op": "stop"})
    if answer is None:
        return None
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and wire.socket_path().exists():
        time.sleep(0.1)
    return answer
