"""The crawl journal's copy in the store: what one host appended, another host replays byte for byte."""

from __future__ import annotations

from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from tokenmill.corpus.crawl.fetch import Fetched
from tokenmill.corpus.crawl.journal import JOURNAL, Journal, JournalMirror, load_journal, read_body


def fill(journal: Journal, pages: range) -> None:
    for i in pages:
        record = journal.fetched(Fetched(f"http://t/{i}", f"http://t/{i}", 200, None, body=f"<p>page {i}</p>".encode()),
                                 depth=1)
        assert record["body"] is not None
        journal.extracted(f"http://t/{i}", f"page {i}", [], None, 0.01)


def test_another_host_replays_the_mirrored_journal(tmp_path: Path):
    store_copy = str(tmp_path / "store" / "crawl" / ".state" / "k")
    first_host = tmp_path / "host-a"
    journal = Journal(first_host, JournalMirror(LocalFileSystem(), store_copy, every_s=0))
    fill(journal, range(3))
    journal.robots("t", 200, b"User-agent: *\nAllow: /\n")
    fill(journal, range(3, 5))  # every append synced: no close, as after a SIGKILL

    second_host = tmp_path / "host-b"
    JournalMirror(LocalFileSystem(), store_copy, every_s=0).restore(second_host)
    replayed = load_journal(second_host)
    assert sorted(replayed.fetched) == [f"http://t/{i}" for i in range(5)]
    assert [read_body(second_host, replayed.fetched[f"http://t/{i}"]) for i in range(5)] == [
        f"<p>page {i}</p>".encode() for i in range(5)]
    assert replayed.robots["t"] == (200, b"User-agent: *\nAllow: /\n")
    assert (second_host / JOURNAL).read_bytes() == (first_host / JOURNAL).read_bytes()


def test_a_longer_local_journal_wins_and_goes_on_from_the_store_copy(tmp_path: Path):
    store_copy = str(tmp_path / "copy")
    host = tmp_path / "host"
    journal = Journal(host, JournalMirror(LocalFileSystem(), store_copy, every_s=3600))
    fill(journal, range(2))
    journal.mirror.sync(host)
    fill(journal, range(2, 4))  # appended here, not yet synced
    journal.lines.close()
    journal.bodies.close()

    mirror = JournalMirror(LocalFileSystem(), store_copy, every_s=3600)
    mirror.restore(host)  # the local journal is longer: kept
    assert sorted(load_journal(host).fetched) == [f"http://t/{i}" for i in range(4)]
    resumed = Journal(host, mirror)
    fill(resumed, range(4, 5))
    resumed.close()  # uploads everything past the store's copy

    elsewhere = tmp_path / "elsewhere"
    JournalMirror(LocalFileSystem(), store_copy, every_s=0).restore(elsewhere)
    assert (elsewhere / JOURNAL).read_bytes() == (host / JOURNAL).read_bytes()
    assert read_body(elsewhere, load_journal(elsewhere).fetched["http://t/4"]) == b"<p>page 4</p>"
