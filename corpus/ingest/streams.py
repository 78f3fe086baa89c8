"""Decoded input streams of the load step: bounded reads, cuts detected, limits with reasons.

A reader never holds a whole file: it pulls blocks of decoded bytes from a `DecodedStream`,
which stops with `StreamStopped` (a drop reason and the decoded and compressed offsets) when
the file is cut short, its compression is corrupt, or it decodes past `load.max_file_gb`.
python-zstandard's stream reader returns a quiet EOF in the middle of a frame (the issue's
truncated `.zst` lost 70% of its records unnoticed), so zstd frames are walked on the side
(`ZstdFrames`) to tell the end of a file from a cut.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

import fsspec

BLOCK_BYTES = 8 * 2**20
HEAD_BYTES = 1024

REASON_TRUNCATED = "load:truncated"
REASON_BAD_COMPRESSION = "load:bad_compression"
REASON_FILE_TOO_LARGE = "load:file_too_large"
REASON_RECORD_TOO_LARGE = "load:record_too_large"
REASON_BINARY = "load:binary"

# Control characters that text has no use for: C0 but tab, LF, VT, FF, CR and ESC (ANSI colours
# in logs), and DEL. In UTF-8 these bytes never occur inside a multi-byte character.
CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])


@dataclass(frozen=True)
class Limits:
    """The bounds on one input, in bytes (`load.max_record_mb`, `load.max_file_gb`, `load.max_control_frac`)."""

    max_record_bytes: int
    max_file_bytes: int
    max_control_frac: float


def control_frac(data: bytes) -> float:
    """The fraction of `data` (UTF-8) that is control bytes: NUL-filled or binary files often
    decode as valid UTF-8, so decoding alone does not tell them from text."""
    if not data:
        return 0.0
    return (len(data) - len(data.translate(None, CONTROL_BYTES))) / len(data)


class StreamStopped(Exception):
    """Reading one file stopped before its end: `reason` says why, `offset` where in the decoded
    bytes, `compressed_offset` how far into the file. `record_offset` and `record` are the
    unfinished record it cut, when a line reader had started one."""

    def __init__(self, reason: str, offset: int, compressed_offset: int, detail: str):
        super().__init__(f"{detail} (decoded offset {offset}, file offset {compressed_offset})")
        self.reason, self.offset, self.compressed_offset, self.detail = reason, offset, compressed_offset, detail
        self.record_offset: int | None = None
        self.record = b""

    def where(self, url: str) -> dict[str, Any]:
        """The rejected row's `meta`: where the file stopped and the unfinished record began."""
        start = self.offset if self.record_offset is None else self.record_offset
        return {"file": url, "offset": start, "stopped_at": self.offset,
                "compressed_offset": self.compressed_offset, "error": self.detail}


ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MAGIC, SKIPPABLE_MASK = 0x184D2A50, 0xFFFFFFF0


class ZstdFrames:
    """Walks zstd frame and block headers (RFC 8878 §3.1) as compressed bytes pass, skipping block
    contents, so that `complete` says whether the bytes so far end on a frame boundary."""

    def __init__(self) -> None:
        self.state, self.need = "magic", 4
        self.header = bytearray()
        self.skip = 0
        self.checksum = False
        self.invalid: str | None = None
        self.position = 0

    @property
    def complete(self) -> bool:
        return self.state == "magic" and not self.header and not self.skip and self.invalid is None

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data) and self.invalid is None:
            if self.skip:
                step = min(self.skip, len(data) - pos)
                self.skip -= step
            else:
                step = min(self.need - len(self.header), len(data) - pos)
                self.header += data[pos:pos + step]
                if len(self.header) == self.need:
                    value = int.from_bytes(self.header, "little")
                    self.header.clear()
                    self._advance(value, self.position + pos + step)
            pos += step
        self.position += len(data)

    def _advance(self, value: int, position: int) -> None:
        state = self.state
        if state == "magic":
            if value == ZSTD_MAGIC:
                self.state, self.need = "descriptor", 1
            elif value & SKIPPABLE_MASK == SKIPPABLE_MAGIC:
                self.state = "skippable"
            else:
                self.invalid = f"no zstd frame starts at file offset {position - 4}"
        elif state == "skippable":
            self.skip, self.state = value, "magic"
        elif state == "descriptor":
            single_segment = value >> 5 & 1
            content_size_bytes = (single_segment, 2, 4, 8)[value >> 6]
            rest = (1 - single_segment) + (0, 1, 2, 4)[value & 3] + content_size_bytes
            self.checksum = bool(value >> 2 & 1)
            self.state, self.need = ("header", rest) if rest else ("block", 3)
        elif state == "header":
            self.state, self.need = "block", 3
        elif state == "block":
            last, kind, size = value & 1, value >> 1 & 3, value >> 3
            if kind == 3:
                self.invalid = f"reserved zstd block type at file offset {position - 3}"
            self.skip = 1 if kind == 1 else size
            if last:
                self.state, self.need = ("checksum", 4) if self.checksum else ("magic", 4)
        else:  # checksum
            self.state, self.need = "magic", 4


class _CountingReader:
    """The raw file as the decompressor pulls it: counts the bytes and shows them to `frames`."""

    def __init__(self, raw: BinaryIO, frames: ZstdFrames | None):
        self.raw, self.frames, self.count = raw, frames, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        if self.frames is not None:
            self.frames.feed(data)
        return data


class DecodedStream:
    """The decoded bytes of one file, read in pieces no larger than asked, never past `max_bytes`.

    Truncation (gzip's EOFError, an unfinished zstd frame), corrupt data and reading past
    `max_bytes` raise `StreamStopped`; every other error (the file system's) propagates.
    Seeking is for uncompressed files only, which the load step splits into byte ranges.
    """

    def __init__(self, raw: BinaryIO, compression: str | None, max_bytes: int):
        import zstandard

        self.raw, self.compression, self.max_bytes, self.position = raw, compression, max_bytes, 0
        self.frames = ZstdFrames() if compression == "zstd" else None
        self.counting = _CountingReader(raw, self.frames)
        self.corrupt_errors: tuple[type[BaseException], ...] = (zlib.error, gzip.BadGzipFile, zstandard.ZstdError)
        # read1: what one pull of the file decodes to, so a cut or a corrupt block loses nothing before it.
        self.decoder: Any = None
        if compression == "gzip":
            self.decoder = gzip.GzipFile(fileobj=self.counting, mode="rb")
            self.read_piece = self.decoder.read1
        elif compression == "zstd":
            self.decoder = zstandard.ZstdDecompressor().stream_reader(
                self.counting, read_across_frames=True, closefd=False
            )
            self.read_piece = self.decoder.read1
        elif compression is None:
            self.read_piece = self.counting.read
        else:
            raise ValueError(f"unknown compression {compression!r}")

    def read(self, size: int) -> bytes:
        want = min(size, self.max_bytes - self.position)
        if want <= 0:
            if self._decode(1):
                detail = f"decodes to more than load.max_file_gb ({self.max_bytes} bytes)"
                raise self._stop(REASON_FILE_TOO_LARGE, detail)
            return b""
        data = self._decode(want)
        self.position += len(data)
        return data

    read1 = read

    def tell(self) -> int:
        return self.position

    def seek(self, position: int) -> None:
        if self.compression is not None:
            raise ValueError("a compressed stream reads from its start")
        self.raw.seek(position)
        self.position = self.counting.count = position

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
        self.raw.close()

    def __enter__(self) -> DecodedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, size: int) -> bytes:
        try:
            data = self.read_piece(size)
        except EOFError as exc:
            raise self._stop(REASON_TRUNCATED, f"cut short: {exc}") from None
        except self.corrupt_errors as exc:
            raise self._stop(REASON_BAD_COMPRESSION, f"corrupt {self.compression} data: {exc}") from None
        if not data and self.frames is not None and not self.frames.complete:
            if self.frames.invalid:
                raise self._stop(REASON_BAD_COMPRESSION, f"corrupt zstd data: {self.frames.invalid}")
            raise self._stop(REASON_TRUNCATED, "cut short: the file ends inside a zstd frame")
        return data

    def _stop(self, reason: str, detail: str) -> StreamStopped:
        return StreamStopped(reason, self.position, self.counting.count, detail)


def open_stream(url: str, compression: str | None, limits: Limits) -> DecodedStream:
    return DecodedStream(fsspec.open(url, "rb").open(), compression, limits.max_file_bytes)


class Line(NamedTuple):
    """One line (its newline left out) and where it starts; `data` holds only the first bytes
    (up to `HEAD_BYTES`) of a line longer than the record limit, and `size` its full length."""

    offset: int
    data: bytes
    size: int

    @property
    def whole(self) -> bool:
        return len(self.data) == self.size


def _blocks(f: Any, block_bytes: int) -> Iterator[bytes]:
    """Blocks of about `block_bytes`, built from `read1` pieces so that a stream that stops still
    yields everything decoded before it stopped, then raises."""
    read = getattr(f, "read1", f.read)
    pieces: list[bytes] = []
    size = 0
    try:
        while True:
            piece = read(block_bytes)
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
            if size >= block_bytes:
                yield b"".join(pieces)
                pieces, size = [], 0
    except StreamStopped:
        if pieces:
            yield b"".join(pieces)
        raise
    if pieces:
        yield b"".join(pieces)


def iter_lines(f: Any, start: int, end: int | None, max_line_bytes: int) -> Iterator[Line]:
    """Every line that starts in [start, end), read in large blocks; memory stays within one
    block plus `max_line_bytes`, however long a line is.

    A line that starts before `start` belongs to the previous chunk, which reads past its own
    end to finish it: the usual rule for splitting text files by byte range. If the stream
    stops, the unfinished last line goes with the `StreamStopped` (`record_offset`, `record`)
    instead of passing for a whole line.
    """
    offset = 0
    carry = b""
    long_line: tuple[bytes, int] | None = None  # head and size so far of a line past the limit
    try:
        blocks = _blocks(f, BLOCK_BYTES)
        if start > 0:
            f.seek(start - 1)
            offset, blocks = _after_newline(blocks, start - 1)
        for block in blocks:
            if long_line is not None:
                newline = block.find(b"\n")
                if newline < 0:
                    long_line = (long_line[0], long_line[1] + len(block))
                    continue
                yield Line(offset, long_line[0], long_line[1] + newline)
                offset += long_line[1] + newline + 1
                block, long_line = block[newline + 1:], None
                if end is not None and offset >= end:
                    return
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            for line in lines:
                if end is not None and offset >= end:
                    return
                yield _line(offset, line, max_line_bytes)
                offset += len(line) + 1
            if end is not None and offset >= end:
                return
            if len(carry) > max_line_bytes:
                long_line, carry = (carry[:min(HEAD_BYTES, max_line_bytes)], len(carry)), b""
    except StreamStopped as stop:
        if carry or long_line is not None:
            stop.record_offset, stop.record = offset, long_line[0] if long_line else carry
        raise
    if long_line is not None:
        yield Line(offset, long_line[0], long_line[1])
    elif carry:
        yield _line(offset, carry, max_line_bytes)


def _line(offset: int, data: bytes, max_line_bytes: int) -> Line:
    return Line(offset, data if len(data) <= max_line_bytes else data[:min(HEAD_BYTES, max_line_bytes)], len(data))


def _after_newline(blocks: Iterator[bytes], position: int) -> tuple[int, Iterator[bytes]]:
    """Skip to just after the first newline at or past `position`, block by block (a line can be
    longer than memory allows); the offset there and the blocks from there on."""
    for block in blocks:
        newline = block.find(b"\n")
        if newline < 0:
            position += len(block)
            continue
        rest = block[newline + 1:]
        return position + newline + 1, _prepend(rest, blocks)
    return position, iter(())


def _prepend(first: bytes, blocks: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from blocks


def read_record(f: Any, max_bytes: int) -> tuple[bytes, int]:
    """A whole-file record and its size; past `max_bytes` reading stops, and only the first
    `HEAD_BYTES` come back with the size read so far (a lower bound)."""
    pieces: list[bytes] = []
    size = 0
    try:
        for block in _blocks(f, min(BLOCK_BYTES, max_bytes + 1)):
            pieces.append(block)
            size += len(block)
            if size > max_bytes:
                return b"".join(pieces)[:HEAD_BYTES], size
    except StreamStopped as stop:
        stop.record_offset, stop.record = 0, b"".join(pieces)
        raise
    return b"".join(pieces), size
