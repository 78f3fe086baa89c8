"""The Prefect API that a `tokenmill run` reports to, started before it is needed.

Without `PREFECT_API_URL`, Prefect starts a temporary server when the flow run first calls the
API, and waits for it: about 10 s here, most of it the server process importing. `EarlyAPI`
starts that same server process (Prefect's own command for it) as the CLI begins, so it boots
while the CLI imports Prefect and the Dask cluster starts, then points this process's Prefect
settings at it and stops it when the run is over, as Prefect's test harness does. With
`PREFECT_API_URL` set, in the environment or the active profile, that server is used and
nothing starts.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from tokenmill.corpus.store.errors import ServiceError
from tokenmill.flows.env import PREFECT_DEFAULTS

# Prefect's settings for the server process it starts itself: no UI, ephemeral mode.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STOP_WAIT_S = 5.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wants_temporary_server() -> bool:
    """False where Prefect would not start one: an API URL in the environment, or ephemeral mode off."""
    allowed = os.environ.get("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true").lower() not in ("0", "false", "no")
    return allowed and not os.environ.get("PREFECT_API_URL")


class EarlyAPI:
    """`with EarlyAPI() as api:` starts the server process (if one is wanted); `with api.serving():`
    waits until it answers and runs Prefect against it; leaving the outer block stops it."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        """`env`: settings for the server process beyond this process's environment (a PREFECT_HOME)."""
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.env = env or {}

    def __enter__(self) -> EarlyAPI:
        if _wants_temporary_server():
            self._start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _start(self) -> None:
        self.port = _free_port()
        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent  # type: ignore[arg-type, union-attr]
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent), "--factory",
                   "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                   "--log-level", "error", "--lifespan", "on"]
        env = {**PREFECT_DEFAULTS, **os.environ, **self.env, **SERVER_ENV}  # no telemetry from a one-run server
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        """Stop the server process, if one runs."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def wait_until_answering(self) -> None:
        """Block until the server answers its health check (restarted once if its port was taken)."""
        timeout = float(os.environ.get(STARTUP_TIMEOUT_ENV, "20"))
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                # The port was taken between choosing and binding it: start again on another.
                self._start()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"the temporary Prefect server did not answer within {timeout:g} s "
                                   f"(raise {STARTUP_TIMEOUT_ENV}, or set PREFECT_API_URL to a running server)")
            time.sleep(0.05)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Prefect in this block reports to the early server; logs and events are flushed to it
        before it stops. A `PREFECT_API_URL` from the active profile wins (the early server stops)."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        if self.process is not None and PREFECT_API_URL.value():
            self.stop()
        if self.process is None:
            yield
            return
        self.wait_until_answering()
        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            try:
                yield
            finally:
                _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    """Send the flow runs' queued logs and events while the server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=STOP_WAIT_S)
    EventsWorker.drain_all(timeout=STOP_WAIT_S)
