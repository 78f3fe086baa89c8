"""What the `tokenmill` command and its daemon say to each other, over a Unix socket of this user's.

A message is a 4-byte length and a JSON object; a run request carries the caller's stdin, stdout
and stderr as file descriptors beside it (SCM_RIGHTS), so the run writes to the caller's terminal
or pipes as if it ran in the caller's process. Only the standard library is imported here: the
command reads this module before deciding whether it needs Prefect at all.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

SOCKET_ENV = "TOKENMILL_DAEMON_SOCKET"
OFF_ENV = "TOKENMILL_DAEMON"  # "off": never use a daemon
HEADER = struct.Struct("!I")
MAX_FDS = 3
# The settings a run reads when Python, Prefect or Dask import their code, which a daemon did once: a
# caller whose values differ (another PYTHONPATH would even mean other tokenmill code) runs in its
# own process instead.
IMPORT_TIME_PREFIXES = ("PREFECT_", "DASK_")
IMPORT_TIME_NAMES = ("DO_NOT_TRACK", "PYTHONPATH", "PYTHONHOME")


def socket_path() -> Path:
    """The daemon's socket: TOKENMILL_DAEMON_SOCKET, else in the user's cache folder."""
    named = os.environ.get(SOCKET_ENV)
    if named:
        return Path(named)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tokenmill" / "daemon.sock"


def import_time_settings(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith(IMPORT_TIME_PREFIXES) or k in IMPORT_TIME_NAMES}


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    framed = HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [framed], fds) if fds else 0
    if sent < len(framed):
        sock.sendall(framed[sent:])


class Reader:
    """Messages off one connection, in order, however the stream splits or joins them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def next(self) -> tuple[dict[str, Any] | None, list[int]]:
        """The next message and the descriptors that came with it; (None, []) once the peer hung up."""
        fds: list[int] = []
        while not self._complete():
            data, more_fds, _, _ = socket.recv_fds(self.sock, 65536, MAX_FDS)
            fds += more_fds
            if not data:
                return None, fds
            self.buffer += data
        size = HEADER.unpack_from(self.buffer)[0]
        message, self.buffer = self.buffer[HEADER.size:HEADER.size + size], self.buffer[HEADER.size + size:]
        return json.loads(message), fds

    def _complete(self) -> bool:
        return len(self.buffer) >= HEADER.size and len(self.buffer) >= HEADER.size + HEADER.unpack_from(self.buffer)[0]


def request(message: dict[str, Any], path: Path | None = None, timeout: float | None = 5.0) -> dict[str, Any] | None:
    """One request and its first answer; None when no daemon answers at the socket (`socket_path()`)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path or socket_path()))
            send(sock, message)
            return Reader(sock).next()[0]
    except OSError:
        return None
