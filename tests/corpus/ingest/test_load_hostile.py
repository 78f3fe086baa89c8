"""The load step on hostile input: bombs, cut and corrupt files, binary content. Each is a
rejected row with its reason and place, the version commits, and no worker dies."""

import gzip
import hashlib
import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tokenmill.corpus.ingest import streams
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.ingest.streams import HEAD_BYTES, ZstdFrames, control_frac, iter_lines
from tokenmill.corpus.store.errors import InputError


def load(store, client, *paths, **settings):
    return run_load(store, LoadParams(paths=[str(p) for p in paths], **settings), client)


def rows(store, vid, kind="kept"):
    return store.read_docs(vid, kind=kind).compute().sort_values("id").reset_index(drop=True)


def drops(store, version):
    """Rejected docs per reason, as stats.json counts them; in = kept + rejected checked on the way."""
    stats = store.read_json(version.id, "stats.json")
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_rejected"]
    return {reason: entry["docs"] for reason, entry in stats["rejected"].items()}


def workers(client):
    """The workers' addresses: a worker killed and restarted by its nanny comes back under a new one."""
    return set(client.scheduler_info()["workers"])


def jsonl_bytes(texts):
    return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()


def distinct_texts(n):
    """Texts that do not compress to nothing, so a cut file still holds whole records."""
    return [f"record {i} {hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(n)]


def test_zst_bomb_is_one_rejected_record_and_no_worker_dies(store, client, tmp_path):
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (8 * 2**20))
    assert len(bomb) < 4096, "the issue's bomb in miniature: tiny file, 2000x larger decoded"
    (tmp_path / "bomb.jsonl.zst").write_bytes(bomb)
    (tmp_path / "bomb.txt.zst").write_bytes(bomb)
    (tmp_path / "good.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl_bytes(["fine"])))
    before = workers(client)
    version = load(store, client, tmp_path, max_record_mb=1)
    assert not version.cached and workers(client) == before
    assert drops(store, version) == {"load:record_too_large": 2}
    assert rows(store, version.id).text.tolist() == ["fine"]
    rejected = rows(store, version.id, "rejected").set_index("source")
    for name in ("bomb.jsonl.zst", "bomb.txt.zst"):
        where = json.loads(rejected.loc[str(tmp_path / name), "meta"])
        assert where["file"] == str(tmp_path / name) and where["size"] > 2**20
        assert len(rejected.loc[str(tmp_path / name), "text"]) <= HEAD_BYTES


def test_a_file_past_max_file_gb_stops_there_keeping_the_records_before(store, client, tmp_path):
    lines = jsonl_bytes(distinct_texts(40_000))
    (tmp_path / "many.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    (tmp_path / "plain.jsonl").write_bytes(lines)
    limit = 2**20
    before_limit = lines[:limit].count(b"\n")
    cut_record_offset = lines[:limit].rindex(b"\n") + 1
    version = load(store, client, tmp_path, max_file_gb=limit / 2**30, chunk_mb=0.25)
    assert drops(store, version) == {"load:file_too_large": 2}
    kept = rows(store, version.id)
    assert kept.source.value_counts().to_dict() == {str(tmp_path / "many.jsonl.zst"): before_limit,
                                                    str(tmp_path / "plain.jsonl"): before_limit}
    for where in map(json.loads, rows(store, version.id, "rejected").meta):
        assert where["stopped_at"] == limit and where["offset"] == cut_record_offset


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".zst", zstandard.ZstdCompressor().compress)])
def test_a_cut_compressed_file_keeps_whole_records_and_rejects_the_cut_one(store, client, tmp_path, suffix, compress):
    texts = distinct_texts(20_000)
    lines = jsonl_bytes(texts)
    data = compress(lines)
    cut = data[: len(data) * 3 // 10]
    (tmp_path / f"a.jsonl{suffix}").write_bytes(cut)
    (tmp_path / f"b.txt{suffix}").write_bytes(compress(b"a whole text file\n" * 50_000)[:-20])
    version = load(store, client, tmp_path)
    assert drops(store, version) == {"load:truncated": 2}, "the cut record of a.jsonl and the cut b.txt"
    kept = rows(store, version.id)
    assert 0 < len(kept) < len(texts) and set(kept.text) == set(texts[: len(kept)])
    assert set(kept.source) == {str(tmp_path / f"a.jsonl{suffix}")}
    rejected = rows(store, version.id, "rejected").set_index("source")
    cut_record = rejected.loc[str(tmp_path / f"a.jsonl{suffix}")]
    where = json.loads(cut_record.meta)
    assert where["compressed_offset"] == len(cut)
    assert where["offset"] == len(jsonl_bytes(texts[: len(kept)]))
    assert json.dumps({"text": texts[len(kept)]}).startswith(cut_record.text)
    assert "whole text file" in rejected.loc[str(tmp_path / f"b.txt{suffix}"), "text"]


def test_zstd_files_of_several_frames_are_read_to_the_end(store, client, tmp_path):
    frames = b"".join(zstandard.ZstdCompressor().compress(jsonl_bytes([f"frame {i}"])) for i in range(3))
    (tmp_path / "frames.jsonl.zst").write_bytes(frames)
    version = load(store, client, tmp_path / "frames.jsonl.zst")
    assert sorted(rows(store, version.id).text) == ["frame 0", "frame 1", "frame 2"]


def corrupt_row_group(path, group):
    """Overwrite one row group's text column chunk, page headers included."""
    column = pq.ParquetFile(path).metadata.row_group(group).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    data = bytearray(path.read_bytes())
    data[start:start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    path.write_bytes(bytes(data))


def test_corrupt_parquet_is_rejected_and_its_readable_row_groups_kept(store, client, tmp_path):
    texts = [f"row {i} " + "word " * 20 for i in range(300)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "groups.parquet", row_group_size=100)
    corrupt_row_group(tmp_path / "groups.parquet", 1)
    pq.write_table(pa.table({"text": texts}), tmp_path / "whole.parquet")
    whole = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "whole.parquet").unlink()
    (tmp_path / "noise.parquet").write_bytes(os.urandom(4096))
    version = load(store, client, tmp_path)
    assert drops(store, version) == {"load:bad_parquet": 3}
    assert sorted(rows(store, version.id).text) == sorted(texts[:100] + texts[200:])
    rejected = rows(store, version.id, "rejected").set_index("source")
    group = json.loads(rejected.loc[str(tmp_path / "groups.parquet"), "meta"])
    assert group["row_group"] == 1 and group["row"] == 100 and "rows 100..199" in group["error"]


def test_a_parquet_file_without_the_text_column_is_a_config_error_first_and_a_row_after(store, client, tmp_path):
    pq.write_table(pa.table({"body": ["no text column"]}), tmp_path / "b.parquet")
    with pytest.raises(InputError, match="set load.text_field"):
        load(store, client, tmp_path / "b.parquet")
    pq.write_table(pa.table({"text": ["kept"]}), tmp_path / "a.parquet")
    version = load(store, client, tmp_path)
    assert drops(store, version) == {"load:no_text": 1}
    assert "no column 'text'" in json.loads(rows(store, version.id, "rejected").meta[0])["error"]


def test_binary_content_is_rejected_and_text_with_a_few_controls_kept(store, client, tmp_path, write_jsonl):
    (tmp_path / "nul.txt").write_bytes(b"\0" * 4096)
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 8)
    (tmp_path / "log.txt").write_text("\x1b[31mERROR\x1b[0m\tdisk full\f\n" * 20)
    write_jsonl(tmp_path / "a.jsonl", [{"text": "\x00\x01\x02\x03 packed"}, {"text": "one stray \x00 " + "word " * 30}])
    version = load(store, client, tmp_path)
    assert drops(store, version) == {"load:binary": 3}
    assert len(rows(store, version.id)) == 2
    rejected = rows(store, version.id, "rejected")
    assert sorted(rejected.source.map(os.path.basename)) == ["a.jsonl", "image.txt", "nul.txt"]
    assert all("over load.max_control_frac" in json.loads(meta)["error"] for meta in rejected.meta)


def test_control_frac_counts_controls_but_whitespace_and_escape():
    assert control_frac(b"") == 0.0
    assert control_frac(b"\t\n\r\x0b\x0c\x1b plain") == 0.0
    assert control_frac(b"\x00\x07\x7fab") == pytest.approx(3 / 5)


def test_iter_lines_bounds_a_line_longer_than_a_block(monkeypatch):
    monkeypatch.setattr(streams, "BLOCK_BYTES", 8)
    data = b"ok\n" + b"x" * 100 + b"\nafter\n" + b"y" * 30
    lines = list(iter_lines(io.BytesIO(data), 0, None, 10))
    assert [(line.offset, line.size, line.whole) for line in lines] == [
        (0, 2, True), (3, 100, False), (104, 5, True), (110, 30, False)]
    assert all(len(line.data) <= 10 for line in lines)
    after_long = [line.data for line in iter_lines(io.BytesIO(data), 5, None, 10)]
    assert after_long[0] == b"after", "a range that starts inside a long line skips it without holding it"


def test_zstd_frames_are_complete_only_at_frame_ends():
    payloads = [b"alpha " * 50, b"", os.urandom(3000)]
    compressors = [zstandard.ZstdCompressor(write_checksum=True), zstandard.ZstdCompressor(write_content_size=False),
                   zstandard.ZstdCompressor(level=19, write_dict_id=False)]
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345"
    parts = [c.compress(p) for c, p in zip(compressors, payloads)] + [skippable]
    data = b"".join(parts)
    ends = {sum(len(p) for p in parts[:i]) for i in range(len(parts) + 1)}
    for cut in range(len(data) + 1):
        frames = ZstdFrames()
        frames.feed(data[:cut // 2])
        frames.feed(data[cut // 2:cut])
        assert frames.complete == (cut in ends), cut
    garbage = ZstdFrames()
    garbage.feed(b"not zstd")
    assert not garbage.complete and garbage.invalid
