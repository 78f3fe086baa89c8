"""The evaluation texts: docs versions, JSONL or plain text files, or the pydoc topics.

Pack decontaminates against them and eval scores bits per byte on them; by default both use
`python-docs://topics`, a fixed text set that ships with Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import fsspec

from tokenmill.corpus.ingest import pydocs
from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.step import read_batches
from tokenmill.corpus.store.versions import Store, step_of


def is_version(store: Store, name: str) -> bool:
    try:
        step_of(name)
    except InputError:
        return False
    return store.exists(name)


def eval_texts(store: Store, sources: list[str]) -> Iterator[str]:
    """Texts of the eval set: docs versions, JSONL (`text` field), whole text files, or the pydoc topics."""
    import orjson

    for source in sources:
        if source == pydocs.PYTHON_TOPICS_URL:
            yield from pydocs.topics().values()
            continue
        if is_version(store, source):
            for url in store.files(source):
                for table in read_batches(url, ["text"]):
                    yield from (t for t in table["text"].to_pylist() if t)
            continue
        files = fsspec.open_files(source, "rt", encoding="utf-8")
        if not files:
            raise InputError(f"pack.decontaminate: '{source}' is neither a version nor an existing path")
        for opened in files:
            with opened as f:
                if opened.path.endswith((".jsonl", ".ndjson")):
                    yield from (orjson.loads(line)["text"] for line in f if line.strip())
                else:
                    yield f.read()
