"""The tokenizer step: train a sentencepiece model on a deterministic sample of a docs version.

The sample is chosen by a hash of the doc id on the workers (no collect of the corpus): one
pass sums characters per hash bin, the driver picks the cutoffs that fit the budgets, a
second pass returns the sampled text cut into training sentences, which are streamed to
`SentencePieceTrainer.train(sentence_iterator=...)`. Sentences are cut to the trainer's
`max_sentence_length`, because the trainer silently skips longer ones — a long web page
would otherwise teach it nothing.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.store.step import (
    Version,
    VersionKey,
    Written,
    commit_version,
    input_parts,
    read_batches,
)
from tokenmill.corpus.store.versions import Attempt, Store
from tokenmill.tokenize.model import (
    BOS_ID,
    EOS_ID,
    MODEL_FILE,
    PAD_ID,
    UNK_ID,
    VOCAB_FILE,
)
from tokenmill.tokenize.sampling import UNIT_BINS, bin_edge, bins_within, id_units, unit_histogram

STEP = "tokenizer"
CODE_VERSION = "tokenizer-v3"  # v2: sample cutoffs on geometric bins; v3: a mask piece (mask_id in the stats)
SAMPLE_SALT = "tokenizer-sample"
BYTE_PIECES = 256


class TokenizerParams(Settings):
    vocab_size: int = Field(default=32_000, ge=64, le=1_000_000, description="pieces in the vocabulary")
    model_type: Literal["bpe", "unigram"] = Field(default="bpe", description="sentencepiece model type")
    byte_fallback: bool = Field(default=True, description="unknown characters become UTF-8 byte pieces, never <unk>")
    split_digits: bool = Field(default=True, description="every digit its own piece, as LLaMA does for arithmetic")
    normalization_rule_name: Literal["identity", "nfkc", "nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf"] = Field(
        default="identity", description="text normalization; identity keeps decode(encode(text)) == text"
    )
    remove_extra_whitespaces: bool = Field(default=False, description="collapse runs of spaces (breaks code)")
    allow_whitespace_only_pieces: bool = Field(default=True, description="pieces of only spaces, for indentation")
    add_dummy_prefix: bool = Field(
        default=False, description="prepend a space to each text; off so concatenated docs decode exactly"
    )
    character_coverage: float = Field(
        default=0.99995, gt=0, le=1, description="share of characters covered by pieces; the rest go through bytes"
    )
    num_threads: int | None = Field(default=None, ge=1, description="trainer threads (default: cores)")
    pad: bool = Field(default=False, description="reserve id 3 for <pad>")
    user_defined_symbols: list[str] = Field(
        default_factory=lambda: ["\n"],
        description="pieces always kept whole; newline by default so it is one token and never merges into words",
    )
    mask_token: str = Field(
        default="<mask>", min_length=1,
        description="the mask piece of the masked objective, reserved as a control symbol: encoding text never "
        "yields it, so a literal '<mask>' in a doc stays text",
    )
    max_sentence_length: int = Field(
        default=4192, ge=64, description="bytes per training sentence (the trainer skips longer ones, so text is cut)"
    )
    sample_max_chars: int = Field(default=100_000_000, ge=1, description="characters of text in the training sample")
    heldout_fraction: float = Field(
        default=0.01, ge=0, lt=0.5, description="share of characters held out to measure chars and bytes per token"
    )
    heldout_max_chars: int = Field(default=2_000_000, ge=0, description="cap on held-out characters")

    @model_validator(mode="after")
    def _room_for_bytes(self) -> TokenizerParams:
        if self.mask_token in self.user_defined_symbols:
            raise ValueError(f"mask_token {self.mask_token!r} is also a user-defined symbol")
        specials = 5 if self.pad else 4  # unk, bos, eos, (pad), mask
        needed = specials + len(self.user_defined_symbols) + (BYTE_PIECES if self.byte_fallback else 0) + 1
        if self.vocab_size < needed:
            raise ValueError(f"vocab_size {self.vocab_size} leaves no room for learned pieces (need > {needed - 1})")
        return self


def trainer_spec(params: TokenizerParams) -> dict[str, Any]:
    """The keyword arguments given to the sentencepiece trainer, as the manifest records them."""
    return {
        "vocab_size": params.vocab_size,
        "model_type": params.model_type,
        "byte_fallback": params.byte_fallback,
        "split_digits": params.split_digits,
        "normalization_rule_name": params.normalization_rule_name,
        "remove_extra_whitespaces": params.remove_extra_whitespaces,
        "allow_whitespace_only_pieces": params.allow_whitespace_only_pieces,
        "add_dummy_prefix": params.add_dummy_prefix,
        "character_coverage": params.character_coverage,
        "num_threads": params.num_threads or os.cpu_count() or 1,
        "max_sentence_length": params.max_sentence_length,
        "user_defined_symbols": list(params.user_defined_symbols),
        "control_symbols": [params.mask_token],
        "unk_id": UNK_ID,
        "bos_id": BOS_ID,
        "eos_id": EOS_ID,
        "pad_id": PAD_ID if params.pad else -1,
        "minloglevel": 1,
    }


def cut_line(line: str, max_bytes: int) -> list[str]:
    """Pieces of at most `max_bytes` UTF-8 bytes, cut after a space where one exists, else between characters."""
    data = line.encode("utf-8", "surrogatepass")
    pieces = []
    while len(data) > max_bytes:
        cut = data.rfind(b" ", 0, max_bytes) + 1
        if cut <= 0:
            cut = max_bytes
            while data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte: back up to the character start
                cut -= 1
        pieces.append(data[:cut].decode("utf-8", "surrogatepass"))
        data = data[cut:]
    if data:
        pieces.append(data.decode("utf-8", "surrogatepass"))
    return pieces


def training_sentences(text: str, max_bytes: int) -> list[str]:
    """The text as training sentences: whole lines packed up to `max_bytes`, over-long lines cut."""
    sentences: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        line_bytes = len(line.encode("utf-8", "surrogatepass"))
        if size + line_bytes > max_bytes and current:
            sentences.append("".join(current))
            current, size = [], 0
        if line_bytes > max_bytes:
            sentences.extend(cut_line(line, max_bytes))
            continue
        current.append(line)
        size += line_bytes
    if current:
        sentences.append("".join(current))
    return sentences


def heldout_figures(ids: list[list[int]], texts: list[str], is_byte: np.ndarray) -> dict[str, Any]:
    """Characters and bytes per token and the share of byte-fallback tokens over held-out texts."""
    tokens = sum(len(x) for x in ids)
    if not tokens:
        return {"heldout_docs": len(texts), "heldout_tokens": 0, "chars_per_token": None,
                "bytes_per_token": None, "byte_fallback_share": None}
    chars = sum(len(t) for t in texts)
    nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    byte_tokens = int(sum(int(is_byte[np.asarray(x, dtype=np.int64)].sum()) for x in ids))
    return {
        "heldout_docs": len(texts),
        "heldout_tokens": tokens,
        "chars_per_token": round(chars / tokens, 4),
        "bytes_per_token": round(nbytes / tokens, 4),
        "byte_fallback_share": round(byte_tokens / tokens, 6),
    }


@dataclass
class PartSample:
    sentences: list[str] = field(default_factory=list)
    heldout: list[str] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)


def part_histogram(url: str) -> np.ndarray:
    """Characters per hash bin of one part, counted from the bottom of the units (row 0: what each
    sample cutoff would take) and from the top (row 1: what each held-out cutoff would take)."""
    hist = np.zeros((2, UNIT_BINS))
    for table in read_batches(url, ["id", "text"]):
        lengths = np.array([len(t or "") for t in table["text"].to_pylist()], dtype=np.float64)
        units = id_units(table["id"].to_pylist(), SAMPLE_SALT)
        hist[0] += unit_histogram(units, lengths)
        hist[1] += unit_histogram(1.0 - units, lengths)
    return hist


def sample_part(url: str, sample_below: float, heldout_from: float, max_bytes: int) -> PartSample:
    """The part's sampled docs as training sentences, and its held-out docs whole."""
    out = PartSample()
    for table in read_batches(url, ["id", "text"]):
        texts = table["text"].to_pylist()
        for unit, text in zip(id_units(table["id"].to_pylist(), SAMPLE_SALT), texts):
            if not text:
                continue
            if unit >= heldout_from:
                out.heldout.append(text)
            elif unit < sample_below:
                sentences = training_sentences(text, max_bytes)
                out.sentences.extend(sentences)
                out.counters["sample_docs"] += 1
                out.counters["sample_chars"] += len(text)
                out.counters["sample_docs_cut"] += len(sentences) > 1
    return out


def sample_cutoffs(hist: np.ndarray, params: TokenizerParams) -> tuple[float, float]:
    """(sample below, held out from) in hash units: the held-out top first, the sample from the bottom,
    each within 0.7% of its budget whatever the corpus size (`unit_histogram`)."""
    low, high = hist
    heldout_budget = min(params.heldout_max_chars, params.heldout_fraction * float(low.sum()))
    heldout_from = 1.0 - bin_edge(bins_within(high, heldout_budget))
    sample_below = bin_edge(max(1, bins_within(low, params.sample_max_chars)))
    return min(sample_below, heldout_from), heldout_from


def _train(sentences: Iterator[str], spec: dict[str, Any]) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=sentences, model_writer=model, **spec)
    except RuntimeError as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        raise ConfigError(f"tokenizer: sentencepiece refused to train: {message}") from None
    return model.getvalue()


VOCAB_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def vocab_text(sp: Any) -> bytes:
    """`piece<TAB>score` per id, as sentencepiece writes it, with newline/CR/tab pieces escaped
    so every piece stays on its own line (sentencepiece's own file breaks on them)."""
    lines = (f"{sp.id_to_piece(i).translate(VOCAB_ESCAPES)}\t{sp.get_score(i):g}\n" for i in range(sp.vocab_size()))
    return "".join(lines).encode()


class SampleStream:
    """The training sentences of a deterministic sample, streamed from the Dask tasks as they
    finish so no part's sample waits in the driver; the tallies and held-out texts fill in as
    the trainer consumes it. The sample is chosen by a hash of the doc id (module docstring)."""

    def __init__(self, client: Any, parts: list[str], params: TokenizerParams, input_version: str):
        hist = sum(client.gather([client.submit(part_histogram, url, pure=False) for url in parts]))
        if not np.any(hist[0]):
            raise InputError(f"tokenizer: version '{input_version}' has no text to train on")
        self.sample_below, self.heldout_from = sample_cutoffs(hist, params)
        self.max_bytes = params.max_sentence_length
        self.futures = [client.submit(sample_part, url, self.sample_below, self.heldout_from, self.max_bytes,
                                      pure=False) for url in parts]
        self.tally: Counter = Counter()
        self.heldout: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for future in self.futures:
            part = future.result()
            future.release()
            self.tally.update(part.counters)
            self.heldout.extend(part.heldout)
            for sentence in part.sentences:
                self.tally["sentences"] += 1
                if len(sentence.encode("utf-8", "surrogatepass")) > self.max_bytes:
                    self.tally["sentences_skipped_too_long"] += 1
                yield sentence


def tokenizer_stats(sp: Any, sample: SampleStream, model_sha256: str, train_seconds: float,
                    params: TokenizerParams, spec: dict[str, Any]) -> dict[str, Any]:
    """The trained model's figures, its sample's tallies and its compression on held-out docs."""
    is_byte = np.array([sp.IsByte(i) for i in range(sp.vocab_size())], dtype=bool)
    return {
        "vocab_size": sp.vocab_size(),
        "train_seconds": round(train_seconds, 3),
        "model_sha256": model_sha256,
        "newline_id": sp.piece_to_id("\n") if "\n" in params.user_defined_symbols else None,
        "mask_token": params.mask_token,
        "mask_id": sp.piece_to_id(params.mask_token),
        "sample_below": sample.sample_below,
        "heldout_from": sample.heldout_from,
        "sentences_skipped_too_long": 0,
        "sample_docs_cut": 0,
        **dict(sample.tally),
        **heldout_figures(sp.encode(sample.heldout), sample.heldout, is_byte),
        "trainer_spec": spec,
    }


def version_key(store: Store, params: TokenizerParams, *, input_version: str) -> VersionKey:
    """What names a tokenizer version: its settings and its input (`store` unused, see `flows.steps`)."""
    return VersionKey.of(STEP, CODE_VERSION, params, [input_version])


def run_tokenizer(
    store: Store, params: TokenizerParams, client: Any, *, force: bool = False, input_version: str
) -> Version:
    """Commit a tokenizer version trained on a sample of `input_version` (or find it cached)."""
    key = version_key(store, params, input_version=input_version)

    def write(attempt: Attempt) -> Written:
        import sentencepiece as spm

        sample = SampleStream(client, input_parts(store, input_version), params, input_version)
        spec = trainer_spec(params)
        started = time.perf_counter()
        model = _train(iter(sample), spec)
        train_seconds = time.perf_counter() - started
        sp = spm.SentencePieceProcessor(model_proto=model)
        files = [attempt.write_bytes(MODEL_FILE, model), attempt.write_bytes(VOCAB_FILE, vocab_text(sp))]
        return Written(files, tokenizer_stats(sp, sample, files[0].sha256, train_seconds, params, spec))

    return commit_version(store, key, write, force=force)
