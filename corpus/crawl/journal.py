"""The crawl's checkpoint: an append-only journal that makes a killed crawl resumable.

Each outcome is appended (and flushed) the moment it is known: robots.txt per host, each
URL's fetch (its body in a side file, written first, so a record never points at a partial
body) and each page's extracted text and links. The frontier is not stored: the crawl is
breadth-first level by level in sorted order, so replaying the journal rebuilds it exactly,
and a rerun fetches only the URLs that have no record. A line cut by SIGKILL is ignored.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tokenmill.corpus.crawl.fetch import Fetched

JOURNAL = "journal.jsonl"
BODIES = "bodies.bin"


@dataclass
class JournalState:
    """What earlier runs with the same settings already did."""

    robots: dict[str, tuple[int | None, bytes]] = field(default_factory=dict)
    fetched: dict[str, dict[str, Any]] = field(default_factory=dict)
    extracted: dict[str, dict[str, Any]] = field(default_factory=dict)


class Journal:
    """Appends records to `journal.jsonl` and bodies to `bodies.bin` in one crawl's state folder."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        _drop_partial_line(folder / JOURNAL)
        self.lines = open(folder / JOURNAL, "ab")
        self.bodies = open(folder / BODIES, "ab")

    def close(self) -> None:
        self.lines.close()
        self.bodies.close()

    def _body(self, body: bytes) -> list[int]:
        offset = self.bodies.seek(0, 2)
        self.bodies.write(body)
        self.bodies.flush()
        return [offset, len(body)]

    def _append(self, record: dict[str, Any]) -> None:
        self.lines.write(orjson.dumps(record) + b"\n")
        self.lines.flush()

    def robots(self, host: str, status: int | None, body: bytes) -> None:
        self._append({"k": "robots", "host": host, "status": status, "body": base64.b64encode(body).decode()})

    def fetched(self, fetched: Fetched, depth: int) -> dict[str, Any]:
        record = {
            "k": "fetch",
            "url": fetched.url,
            "final_url": fetched.final_url,
            "status": fetched.status,
            "reason": fetched.reason,
            "headers": fetched.headers,
            "fetched_at": fetched.fetched_at.isoformat(),
            "depth": depth,
            "requests": fetched.requests,
            "body": self._body(fetched.body) if fetched.body else None,
            "sha256": hashlib.sha256(fetched.body).hexdigest() if fetched.body else None,
        }
        self._append(record)
        return record

    def extracted(self, url: str, text: str, links: list[str], reason: str | None, seconds: float) -> dict[str, Any]:
        record = {"k": "page", "url": url, "text": text, "links": links, "reason": reason, "seconds": seconds}
        self._append(record)
        return record


def _drop_partial_line(path: Path) -> None:
    """Cut a line that a kill left unfinished, so the next record starts on a line of its own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def read_body(folder: Path, record: dict[str, Any]) -> bytes:
    if not record.get("body"):
        return b""
    offset, length = record["body"]
    with open(folder / BODIES, "rb") as f:
        f.seek(offset)
        return f.read(length)


def load_journal(folder: Path) -> JournalState:
    """Replay the journal; a truncated last line (the kill landed mid-write) is skipped."""
    state = JournalState()
    path = folder / JOURNAL
    if not path.exists():
        return state
    with open(path, "rb") as f:
        for line in f:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if record["k"] == "robots":
                state.robots[record["host"]] = (record["status"], base64.b64decode(record["body"]))
            elif record["k"] == "fetch":
                state.fetched[record["url"]] = record
            else:
                state.extracted[record["url"]] = record
    return state
