"""Produce an iterator's items on a thread, a few ahead of their consumer.

A commit that merges sorted segments and writes Parquet does two kinds of Arrow work in turn:
taking rows (the merge) and encoding them (the write). Both release the GIL, so run on two
threads they overlap, and the commit takes about the longer of the two instead of their sum.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    """An error of the producer, on its way to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of `items`, in order, produced on a thread up to `depth` ahead; the producer's error
    is raised here, where its item would have been, and the producer stops when the consumer does."""
    handoff: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except Exception as error:  # handed to the consumer, which raises it
            put(_Failed(error))
            return
        put(_DONE)

    producer = threading.Thread(target=produce, name="tokenmill-read-ahead", daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        producer.join()
