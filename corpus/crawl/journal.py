"""The crawl's checkpoint: an append-only journal that makes a killed crawl resumable.

Each outcome is appended the moment it is known: robots.txt per host, each URL's fetch (its
body in a side file, flushed first, so a record never points at a partial body) and each page's
extracted text and normalized links. A record is flushed as it is appended, or inside `batch()`
with the others of its batch in one write (the crawl decides a batch of extracted pages at
once). The frontier is not stored: it takes URLs in discovery order whatever order pages finish
in (`frontier`), so replaying the journal rebuilds it exactly, and a rerun fetches only the URLs
that have no record. A line cut by SIGKILL is ignored.

The journal is appended on a local disk. With a store on an object store, which cannot append,
`JournalMirror` uploads what was appended since its last sync as numbered segments beside the
version folders, so a crawl killed on one host (a Prefect retry on another pod) resumes on another.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tokenmill.corpus.crawl.fetch import Fetched

JOURNAL = "journal.jsonl"
BODIES = "bodies.bin"


@dataclass
class JournalState:
    """What earlier runs with the same settings already did. Extracted pages are held as their
    record's offset in the journal (their text is read back when the crawl reaches them)."""

    robots: dict[str, tuple[int | None, bytes]] = field(default_factory=dict)
    fetched: dict[str, dict[str, Any]] = field(default_factory=dict)
    extracted: dict[str, int] = field(default_factory=dict)


class Journal:
    """Appends records to `journal.jsonl` and bodies to `bodies.bin` in one crawl's state folder,
    and has `mirror` (if any) copy them to the store every so often and at the end."""

    def __init__(self, folder: Path, mirror: JournalMirror | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.mirror = folder, mirror
        _drop_partial_line(folder / JOURNAL)
        self.lines = open(folder / JOURNAL, "ab")
        self.bodies_path = folder / BODIES
        self.bodies = open(self.bodies_path, "ab")
        self.bodies_end = self.bodies_path.stat().st_size
        self.deferred = 0

    def close(self) -> None:
        self.lines.close()
        self.bodies.close()
        if self.mirror:
            self.mirror.sync(self.folder)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Records appended inside are flushed together when it ends."""
        self.deferred += 1
        try:
            yield
        finally:
            self.deferred -= 1
            if not self.deferred:
                self.flush()

    def flush(self) -> None:
        """Bodies first, then the records that point into them; a SIGKILL after this loses neither."""
        self.bodies.flush()
        self.lines.flush()
        if self.mirror and self.mirror.due():
            self.mirror.sync(self.folder)

    def _body(self, body: bytes) -> list[int]:
        offset = self.bodies_end
        self.bodies.write(body)
        self.bodies_end += len(body)
        return [offset, len(body)]

    def _append(self, record: dict[str, Any]) -> None:
        self.lines.write(orjson.dumps(record) + b"\n")
        if not self.deferred:
            self.flush()

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


class JournalMirror:
    """The journal's copy in the store (`folder`, any fsspec filesystem), as segment pairs
    `segments/<n>.bin` (bodies) and `segments/<n>.jsonl` (records). Each sync uploads the bytes
    appended since the last, bodies first, so a synced record never points at an unsynced body;
    the segments concatenated in order are the journal, byte offsets and all."""

    def __init__(self, fs: Any, folder: str, every_s: float):
        self.fs, self.folder, self.every_s = fs, folder, every_s
        self.synced_lines = self.synced_bodies = self.segments = 0
        self.last_sync = time.monotonic()

    def _segments(self) -> list[str]:
        prefix = f"{self.folder}/segments"
        return sorted(p for p in self.fs.find(prefix) if p.endswith(".jsonl")) if self.fs.exists(prefix) else []

    def restore(self, local: Path) -> None:
        """Start from the store's copy when it holds more than this host's journal (a crawl killed
        elsewhere); keep this host's when it is the longer (it was written here and goes on from there)."""
        names = self._segments()
        self.segments = len(names)
        sizes = self.fs.sizes([*names, *(n.removesuffix(".jsonl") + ".bin" for n in names)]) if names else []
        self.synced_lines, self.synced_bodies = sum(sizes[:len(names)]), sum(sizes[len(names):])
        here = local / JOURNAL
        if self.synced_lines <= (here.stat().st_size if here.exists() else 0):
            return
        local.mkdir(parents=True, exist_ok=True)
        with open(here, "wb") as lines, open(local / BODIES, "wb") as bodies:
            for name in names:
                bodies.write(self.fs.cat_file(name.removesuffix(".jsonl") + ".bin"))
                lines.write(self.fs.cat_file(name))

    def due(self) -> bool:
        return time.monotonic() - self.last_sync >= self.every_s

    def sync(self, local: Path) -> None:
        """Upload what the local journal gained since the last sync as the next segment pair."""
        self.last_sync = time.monotonic()
        lines, bodies = _tail(local / JOURNAL, self.synced_lines), _tail(local / BODIES, self.synced_bodies)
        if not lines:
            return
        self.fs.makedirs(f"{self.folder}/segments", exist_ok=True)
        name = f"{self.folder}/segments/{self.segments:06d}"
        self.fs.pipe_file(f"{name}.bin", bodies)
        self.fs.pipe_file(f"{name}.jsonl", lines)
        self.synced_lines += len(lines)
        self.synced_bodies += len(bodies)
        self.segments += 1

    def clear(self) -> None:
        """Drop the copy (the crawl committed, or `--force` starts afresh)."""
        if self.fs.exists(f"{self.folder}/segments"):
            self.fs.rm(f"{self.folder}/segments", recursive=True)
        self.synced_lines = self.synced_bodies = self.segments = 0


def _tail(path: Path, offset: int) -> bytes:
    """The bytes of `path` from `offset` on, up to its last complete line for the journal."""
    if not path.exists():
        return b""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    return data[: data.rfind(b"\n") + 1] if path.name == JOURNAL else data


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


def read_record(folder: Path, offset: int) -> dict[str, Any]:
    with open(folder / JOURNAL, "rb") as f:
        f.seek(offset)
        return orjson.loads(f.readline())


def load_journal(folder: Path) -> JournalState:
    """Replay the journal; a truncated last line (the kill landed mid-write) is skipped."""
    state = JournalState()
    path = folder / JOURNAL
    if not path.exists():
        return state
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            start, offset = offset, offset + len(line)
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if record["k"] == "robots":
                state.robots[record["host"]] = (record["status"], base64.b64decode(record["body"]))
            elif record["k"] == "fetch":
                state.fetched[record["url"]] = record
            else:
                state.extracted[record["url"]] = start
    return state
