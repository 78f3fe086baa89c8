"""Writer leases on an object store: the lock of DESIGN §2 where there is no `flock`.

A lease is an object `<lock dir>/<generation>.lease` holding its owner and expiry. It is taken
by a conditional create (`mode="xb"`: S3's `If-None-Match: *`, GCS's `if_generation_match=0`),
so of two writers racing for one generation exactly one wins. A live holder renews its expiry
every third of the lease from a daemon thread; a killed one stops renewing, and once its
lease has expired the next writer takes generation + 1, again by conditional create, so a
takeover needs no compare-and-delete. Clocks of the writers are trusted to within a fraction
of the lease (seconds, against a default lease of a minute).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from tokenmill.corpus.store.errors import StoreIOError

SUFFIX = ".lease"
POLL_SECONDS = 0.5


def generation(path: str) -> int:
    return int(path.rsplit("/", 1)[-1][: -len(SUFFIX)])


class Lease:
    """A held lease; `release` gives it up, `check` says whether it is still ours."""

    def __init__(self, fs: Any, folder: str, seconds: float):
        self.fs, self.folder, self.seconds = fs, folder, seconds
        self.owner = uuid.uuid4().hex  # this lease's token in the store
        self.holder = ""  # the attempt in this process that uses it
        self.path = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": time.time() + self.seconds}).encode()

    def _leases(self) -> list[str]:
        try:
            return sorted((p for p in self.fs.ls(self.folder, detail=False, refresh=True) if p.endswith(SUFFIX)),
                          key=generation)
        except FileNotFoundError:
            return []

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            return None

    def _try_create(self, number: int) -> bool:
        path = f"{self.folder}/{number:012d}{SUFFIX}"
        try:
            with self.fs.open(path, "xb") as f:
                f.write(self._body())
        except FileExistsError:
            return False
        self.path = path
        return True

    def try_acquire(self) -> bool:
        """One try, no wait: take a free generation, or the one after an expired lease (a dead
        writer's: whoever takes it over may clean what that writer left)."""
        leases = self._leases()
        if not leases:
            taken = self._try_create(0)
        else:
            top = self._read(leases[-1])
            expired = top is None or top.get("expires", 0) < time.time()
            taken = expired and self._try_create(generation(leases[-1]) + 1)
        if taken:
            for old in leases:
                self.fs.rm_file(old)
            self._start_renewing()
        return taken

    def acquire(self, timeout: float | None = None) -> Lease:
        """Wait until this writer holds the lease."""
        waited = time.monotonic()
        while not self.try_acquire():
            if timeout is not None and time.monotonic() - waited > timeout:
                raise StoreIOError(f"timed out after {timeout:.0f} s waiting for the writer lease {self.folder}")
            time.sleep(POLL_SECONDS)
        return self

    def _start_renewing(self) -> None:
        self._renewer = threading.Thread(target=self._renew, name=f"lease {self.path}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.fs.pipe_file(self.path, self._body())
            except OSError:
                continue  # a missed renewal is retried at the next beat; `check` catches a lost lease

    def check(self) -> None:
        """Raise unless this writer still holds the newest, unexpired lease: called right before committing."""
        leases = self._leases()
        current = self._read(self.path)
        if not leases or leases[-1] != self.path or current is None or current.get("owner") != self.owner \
                or current.get("expires", 0) < time.time():
            raise StoreIOError(f"lost the writer lease {self.path} (expired and taken over); rerun to retry")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            pass
