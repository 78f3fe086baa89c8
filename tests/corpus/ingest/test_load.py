"""The load step on every format: malformed records kept in rejected/, own ids kept, all counted."""

import gzip
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.ingest.readers import doc_id, own_id
from tokenmill.corpus.ingest.streams import iter_lines
from tokenmill.corpus.store.errors import InputError


def load(store, client, *paths, **settings):
    return run_load(store, LoadParams(paths=[str(p) for p in paths], **settings), client)


def rows(store, vid, kind="kept"):
    return store.read_docs(vid, kind=kind).compute().sort_values("id").reset_index(drop=True)


def assert_conserved(version):
    stats = version.manifest.stats
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_rejected"]


def test_jsonl_keeps_docs_and_rejects_bad_records_with_position(store, client, tmp_path, write_jsonl):
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"text": "first doc", "url": "https://example.com/1", "lang_hint": "en"},
            "{not json",
            {"body": "no text field"},
            "[1, 2]",
            {"text": "   "},
            {"text": "second doc"},
        ],
    )
    version = load(store, client, path, source_field="url")
    kept = rows(store, version.id)
    assert sorted(kept.text) == ["first doc", "second doc"]
    first = kept[kept.text == "first doc"].iloc[0]
    assert first.source == "https://example.com/1"
    assert json.loads(first.meta) == {"url": "https://example.com/1", "lang_hint": "en"}
    assert kept[kept.text == "second doc"].iloc[0].source == str(path)

    rejected = rows(store, version.id, "rejected")
    assert sorted(rejected.reason) == ["load:bad_json", "load:bad_json", "load:no_text", "load:no_text"]
    bad = rejected[rejected.text == "{not json"].iloc[0]
    where = json.loads(bad.meta)
    assert where["file"] == str(path) and where["offset"] == len(path.read_bytes().split(b"\n")[0]) + 1
    assert_conserved(version)
    stats = store.read_json(version.id, "stats.json")
    assert stats["rejected"]["load:bad_json"]["docs"] == 2


def test_byte_range_chunks_give_the_same_docs_as_one_chunk(store, client, tmp_path, write_jsonl):
    records = [{"text": f"doc {i} " + "word " * (i % 50)} for i in range(3000)]
    path = write_jsonl(tmp_path / "big.jsonl", records)
    whole = load(store, client, path)
    split = load(store, client, path, chunk_mb=0.01)
    assert split.id != whole.id
    assert split.manifest.stats["docs_out"] == 3000
    assert len([f for f in split.manifest.files if f.path.startswith("part-")]) > 10
    a, b = rows(store, whole.id), rows(store, split.id)
    assert a.id.tolist() == b.id.tolist() and a.text.tolist() == b.text.tolist()


def test_iter_lines_assigns_each_line_to_the_range_it_starts_in():
    data = b"aa\nbbbb\n\ncc\nd"
    ranges = [(0, 3), (3, 5), (5, 9), (9, 20)]
    seen = [line.data for start, end in ranges for line in iter_lines(io.BytesIO(data), start, end, 100)]
    assert seen == [b"aa", b"bbbb", b"", b"cc", b"d"]


def test_gzip_zstd_and_a_truncated_gzip(store, client, tmp_path):
    lines = "".join(json.dumps({"text": f"compressed {i}"}) + "\n" for i in range(200)).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(lines))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    truncated = gzip.compress(lines * 50)
    (tmp_path / "c.jsonl.gz").write_bytes(truncated[: len(truncated) // 2])
    version = load(store, client, tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.zst", tmp_path / "c.jsonl.gz")
    kept = rows(store, version.id)
    by_file = kept.source.value_counts()
    assert by_file[str(tmp_path / "a.jsonl.gz")] == 200
    assert by_file[str(tmp_path / "b.jsonl.zst")] == 200
    assert 0 < by_file[str(tmp_path / "c.jsonl.gz")] < 200 * 50
    rejected = rows(store, version.id, "rejected").set_index("reason")
    assert rejected.index.tolist() == ["load:truncated"], "one row for the cut, with the partial last line if any"
    assert json.loads(rejected.loc["load:truncated", "meta"])["file"] == str(tmp_path / "c.jsonl.gz")
    assert_conserved(version)


def test_text_files_per_file_and_per_line(store, client, tmp_path):
    (tmp_path / "ok.txt").write_text("A whole file is one document.\nWith two lines.\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ol\xe9".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("  \n\n")
    version = load(store, client, tmp_path / "ok.txt", tmp_path / "latin1.txt", tmp_path / "empty.txt")
    assert rows(store, version.id).text.tolist() == ["A whole file is one document.\nWith two lines.\n"]
    rejected = rows(store, version.id, "rejected").set_index("source")
    assert rejected.loc[str(tmp_path / "latin1.txt"), "reason"] == "load:undecodable"
    assert json.loads(rejected.loc[str(tmp_path / "latin1.txt"), "meta"])["offset"] == 3
    assert rejected.loc[str(tmp_path / "empty.txt"), "reason"] == "load:empty"

    per_line = load(store, client, tmp_path / "ok.txt", text_per_line=True)
    assert sorted(rows(store, per_line.id).text) == ["A whole file is one document.", "With two lines."]


def test_html_main_text_and_empty_pages(store, client, tmp_path):
    page = (
        "<html><head><meta charset='windows-1252'><title>t</title></head><body>"
        "<nav>Home | About | Contact</nav><article><h1>Heading</h1>"
        "<p>The main paragraph of this page has real content in it, caf\xe9 included.</p></article>"
        "<footer>Copyright</footer></body></html>"
    )
    (tmp_path / "page.html").write_bytes(page.encode("windows-1252"))
    (tmp_path / "blank.htm").write_text("<html><body><script>var x = 1;</script></body></html>")
    version = load(store, client, tmp_path)
    text = rows(store, version.id).text[0]
    assert "main paragraph" in text and "café" in text and "Contact" not in text
    assert rows(store, version.id, "rejected").reason.tolist() == ["load:extract_empty"]


def write_warc(path: Path) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=True)
        pages = [
            ("https://example.com/a", "text/html; charset=utf-8",
             b"<html><body><article><p>An HTML page served in a WARC response record.</p></article></body></html>"),
            ("https://example.com/b.txt", "text/plain", b"A plain text response."),
            ("https://example.com/c.png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ]
        for uri, ctype, body in pages:
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            record = writer.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=headers)
            writer.write_record(record)
        wet = writer.create_warc_record(
            "https://example.com/d", "conversion", payload=io.BytesIO(b"Text of a WET conversion record."),
            warc_content_type="text/plain",
        )
        writer.write_record(wet)


def test_warc_responses_and_wet_conversions(store, client, tmp_path):
    write_warc(tmp_path / "crawl.warc.gz")
    version = load(store, client, tmp_path / "crawl.warc.gz")
    kept = rows(store, version.id).set_index("source")
    assert kept.loc["https://example.com/a", "text"] == "An HTML page served in a WARC response record."
    assert kept.loc["https://example.com/b.txt", "text"] == "A plain text response."
    assert kept.loc["https://example.com/d", "text"] == "Text of a WET conversion record."
    assert kept.loc["https://example.com/a", "fetched_at"].year >= 2024
    rejected = rows(store, version.id, "rejected")
    assert rejected.reason.tolist() == ["load:content_type"]
    assert rejected.source.tolist() == ["https://example.com/c.png"]
    assert_conserved(version)


def test_parquet_with_column_mapping(store, client, tmp_path):
    links = ["https://x.org/1", "https://x.org/2"]
    table = pa.table({"content": ["from parquet", None], "link": links, "score": [1, 2]})
    pq.write_table(table, tmp_path / "in.parquet")
    version = load(store, client, tmp_path / "in.parquet", text_field="content", source_field="link")
    kept = rows(store, version.id)
    assert kept.text.tolist() == ["from parquet"] and kept.source.tolist() == ["https://x.org/1"]
    assert json.loads(kept.meta[0]) == {"link": "https://x.org/1", "score": 1}
    assert rows(store, version.id, "rejected").reason.tolist() == ["load:no_text"]


def test_bad_paths_fail_before_any_work(store, client, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load(store, client, tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="matches no file"):
        load(store, client, tmp_path / "*.jsonl")
    (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    with pytest.raises(InputError, match="cannot tell the format"):
        load(store, client, tmp_path / "data.bin")
    assert store.versions() == []


def test_folders_are_walked_and_unknown_files_counted(store, client, tmp_path, write_jsonl):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "sub" / "a.jsonl", [{"text": "nested"}])
    (folder / "notes.bin").write_bytes(b"\x00")
    version = load(store, client, folder)
    assert rows(store, version.id).text.tolist() == ["nested"]
    stats = store.read_json(version.id, "stats.json")
    assert stats["skipped_files"] == 1 and stats["skipped_examples"][0].endswith("notes.bin")


def test_rerun_is_cached_and_a_changed_input_is_a_new_version(store, client, tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "one"}])
    first = load(store, client, path)
    again = load(store, client, path)
    assert again.cached and again.id == first.id and again.manifest.created == first.manifest.created
    write_jsonl(path, [{"text": "one"}, {"text": "two"}])
    os.utime(path, (1_700_000_000, 1_700_000_000))
    changed = load(store, client, path)
    assert not changed.cached and changed.id != first.id
    assert changed.manifest.stats["docs_out"] == 2


def test_python_docs_demo_source_reads_real_documentation(store, client):
    version = run_load(store, LoadParams(python_docs_max_mb=0.5), client)
    kept = rows(store, version.id)
    assert len(kept) > 100
    assert kept.source.str.startswith("python-docs://").all()
    topics = kept[kept.source.str.startswith("python-docs://topics/")]
    assert len(topics) > 50 and topics.text.str.len().sum() > 100_000
    assert version.manifest.stats["bytes_out"] < 2 * 2**20
    assert_conserved(version)


def test_own_id_accepts_strings_and_ints_only():
    assert [own_id(v) for v in ("rp-1", 42, 0, -3)] == ["rp-1", "42", "0", "-3"]
    assert [own_id(v) for v in ("", None, True, 1.5, [1], {"a": 1})] == [None] * 6


def test_jsonl_records_keep_their_own_id_unless_missing_invalid_or_repeated(store, client, tmp_path, write_jsonl):
    records = [
        {"id": "rp-1", "text": "first", "set": "redpajama"},
        {"id": 42, "text": "int id"},
        {"text": "no id"},
        {"id": None, "text": "null id"},
        {"id": ["x"], "text": "list id"},
        {"id": "rp-1", "text": "repeated id"},
        {"id": "rp-2", "text": " "},
        {"id": "rp-2", "text": "after a rejected copy"},
    ]
    path = write_jsonl(tmp_path / "a.jsonl", records)
    offsets = [0]
    for line in path.read_bytes().split(b"\n")[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    version = load(store, client, path)
    ids = rows(store, version.id).set_index("text").id
    assert ids["first"] == "rp-1" and ids["int id"] == "42" and ids["after a rejected copy"] == "rp-2"
    for i, text in [(2, "no id"), (3, "null id"), (4, "list id"), (5, "repeated id")]:
        assert ids[text] == doc_id(str(path), offsets[i])
    meta = rows(store, version.id).set_index("text").meta
    assert json.loads(meta["first"]) == {"id": "rp-1", "set": "redpajama"}, "meta stays verbatim"
    assert json.loads(meta["repeated id"]) == {"id": "rp-1"}
    assert rows(store, version.id, "rejected").id.tolist() == [doc_id(str(path), offsets[6])]
    counters = store.read_json(version.id, "stats.json")["counters"]
    assert counters == {"id_generated.duplicate": 1, "id_generated.invalid": 2, "id_generated.missing": 1}
    assert_conserved(version)


def test_parquet_rows_keep_their_own_int_id(store, client, tmp_path):
    table = pa.table({"id": pa.array([10, 11, 10, None], pa.int64()), "text": ["a", "b", "c", "d"]})
    pq.write_table(table, tmp_path / "in.parquet")
    version = load(store, client, tmp_path / "in.parquet")
    ids = rows(store, version.id).set_index("text").id
    url = str(tmp_path / "in.parquet")
    assert ids.to_dict() == {"a": "10", "b": "11", "c": doc_id(url, 2), "d": doc_id(url, 3)}
    counters = store.read_json(version.id, "stats.json")["counters"]
    assert counters == {"id_generated.duplicate": 1, "id_generated.invalid": 1}


@pytest.mark.parametrize("id_field", [None, ""])
def test_no_id_field_always_generates(store, client, tmp_path, write_jsonl, id_field):
    path = write_jsonl(tmp_path / "a.jsonl", [{"id": "keep-me", "text": "one"}])
    version = load(store, client, path, id_field=id_field)
    kept = rows(store, version.id)
    assert kept.id.tolist() == [doc_id(str(path), 0)]
    assert json.loads(kept.meta[0]) == {"id": "keep-me"}
    assert store.read_json(version.id, "stats.json")["counters"] == {}
