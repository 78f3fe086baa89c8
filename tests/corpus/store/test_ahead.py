"""Read-ahead: the items in order, the producer's error where its item would be, and a producer
that stops when its consumer does."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tokenmill.corpus.store.ahead import read_ahead


def test_items_come_in_order_from_another_thread():
    threads = set()

    def items() -> Iterator[int]:
        for n in range(100):
            threads.add(threading.current_thread().name)
            yield n

    assert list(read_ahead(items(), depth=3)) == list(range(100))
    assert threads == {"tokenmill-read-ahead"}


def test_the_producers_error_is_raised_after_the_items_before_it():
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad segment")

    seen: list[int] = []
    with pytest.raises(ValueError, match="bad segment"):
        seen.extend(read_ahead(items()))
    assert seen == [1, 2]


def test_the_producer_stops_when_the_consumer_does():
    produced = []

    def items() -> Iterator[int]:
        for n in range(1_000):
            produced.append(n)
            yield n

    ahead = read_ahead(items(), depth=2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert not any(t.name == "tokenmill-read-ahead" for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 1
