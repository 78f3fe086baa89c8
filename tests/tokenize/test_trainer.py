"""The tokenizer step: sampling helpers, exact round trips, and long docs that still teach the trainer."""

from __future__ import annotations

import random

import numpy as np
import sentencepiece as spm

from tokenmill.tokenize.model import special_ids
from tokenmill.tokenize.sampling import bins_within, unit_histogram
from tokenmill.tokenize.trainer import (
    TokenizerParams,
    cut_line,
    run_tokenizer,
    sample_cutoffs,
    training_sentences,
)

WORDS = "the data model token shard corpus train value batch python import class return 2024 über café".split()
SPECIAL = [
    "Emoji 🙂👍🏽 and flags 🇫🇷 in a line.",
    "漢字とかなの文章です。中文句子。",
    "binary-ish ÿþ\u0100\u2603\U0001f9ec \u0394x \ufb01 end",
    "digits 31415926535897932384626 and 000",
    "  indented\n\tcode = 1\n\n",
]


def corpus(n: int = 150, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    docs = [{"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80))) + ".\n" * rng.randint(1, 2),
             "url": f"http://example.org/{i}"} for i in range(n)]
    return docs + [{"text": t, "url": f"http://example.org/special/{i}"} for i, t in enumerate(SPECIAL)]


def tiny(**overrides) -> TokenizerParams:
    return TokenizerParams(**{"vocab_size": 400, "heldout_fraction": 0.2, **overrides})


def load(store, vid: str) -> spm.SentencePieceProcessor:
    with store.fs.open(f"{store.version_dir(vid)}/tokenizer.model", "rb") as f:
        return spm.SentencePieceProcessor(model_proto=f.read())


def test_cut_line_respects_bytes_and_characters():
    line = "ab " * 10 + "漢" * 20
    pieces = cut_line(line, 16)
    assert "".join(pieces) == line
    assert all(len(p.encode()) <= 16 for p in pieces)
    assert pieces[0].endswith(" ")


def test_training_sentences_pack_lines_and_keep_all_text():
    text = "short line\n" * 50 + "x" * 300 + "\nlast"
    sentences = training_sentences(text, 100)
    assert "".join(sentences) == text
    assert max(len(s.encode()) for s in sentences) <= 100
    assert sentences[0].count("\n") == 9


def histograms(units: np.ndarray, chars: np.ndarray) -> np.ndarray:
    return np.stack([unit_histogram(units, chars), unit_histogram(1.0 - units, chars)])


def taken(units: np.ndarray, chars: np.ndarray, below: float, heldout_from: float) -> tuple[float, float]:
    return float(chars[units < below].sum()), float(chars[units >= heldout_from].sum())


def test_sample_cutoffs_keep_heldout_and_sample_apart():
    units = (np.arange(100_000) + 0.5) / 100_000
    chars = np.full(len(units), 10.0)
    params = TokenizerParams(sample_max_chars=300_000, heldout_fraction=0.05, heldout_max_chars=10**9)
    below, heldout_from = sample_cutoffs(histograms(units, chars), params)
    sample, heldout = taken(units, chars, below, heldout_from)
    assert 0.993 * 300_000 <= sample <= 300_000
    assert 0.993 * 50_000 <= heldout <= 50_000
    assert below < heldout_from
    assert bins_within(np.full(100, 10.0), 25) == 2


def test_sample_meets_its_budget_whatever_the_corpus_size():
    """A corpus of 10**12 characters and a 10**8 budget: equal-width bins would have taken the first
    bin whole (2.4 * 10**8); the geometric bins take the budget to within 0.7%."""
    units = np.random.default_rng(0).random(2_000_000)
    chars = np.full(len(units), 10**12 / len(units))
    params = TokenizerParams(sample_max_chars=10**8, heldout_fraction=0.001, heldout_max_chars=2 * 10**6)
    below, heldout_from = sample_cutoffs(histograms(units, chars), params)
    sample, heldout = taken(units, chars, below, heldout_from)
    one_doc = chars[0]  # 0.5% of the budget: the granularity of this corpus
    assert 0.993 * 10**8 - one_doc <= sample <= 10**8
    assert heldout <= 2 * 10**6


def test_round_trip_and_stats(store, client, docs_version):
    vid = docs_version(corpus())
    version = run_tokenizer(store, tiny(), client, input_version=vid)
    sp = load(store, version.id)
    for text in SPECIAL + ["plain words of the corpus", "tab\tand\nnewline"]:
        assert sp.decode(sp.encode(text)) == text
    digits = [sp.decode([i]) for i in sp.encode("31415926535")]
    assert digits == list("31415926535")
    assert [sp.bos_id(), sp.eos_id(), sp.unk_id()] == [1, 2, 0]
    stats = store.read_json(version.id, "stats.json")
    assert stats["vocab_size"] == 400
    assert stats["heldout_docs"] > 0
    assert 1 < stats["chars_per_token"] <= stats["bytes_per_token"]
    assert 0 <= stats["byte_fallback_share"] < 0.5
    assert stats["sentences_skipped_too_long"] == 0
    files = {f.path: f.sha256 for f in version.manifest.files}
    assert files["tokenizer.model"] == stats["model_sha256"]
    vocab = store.fs.cat(f"{store.version_dir(version.id)}/tokenizer.vocab").decode().splitlines()
    assert len(vocab) == 400 and vocab[3] == "<mask>\t0" and vocab[4].startswith("\\n\t")
    assert stats["mask_id"] == 3 and sp.IsControl(3) and special_ids(sp) == [0, 1, 2, 3]
    assert 3 not in sp.encode("a literal <mask> in a doc stays text")
    assert version.manifest.stats["trainer_spec"]["byte_fallback"] is True
    assert run_tokenizer(store, tiny(), client, input_version=vid).cached


def test_long_web_doc_still_trains(store, client, docs_version):
    long_doc = {"text": "zqxjvw " * 3000, "url": "http://example.org/long"}
    vid = docs_version(corpus(40) + [long_doc])
    version = run_tokenizer(store, tiny(max_sentence_length=1024, heldout_fraction=0), client, input_version=vid)
    stats = version.manifest.stats
    assert stats["sample_docs_cut"] >= 1
    assert stats["sentences_skipped_too_long"] == 0
    sp = load(store, version.id)
    assert sp.encode("zqxjvw", out_type=str) == ["zqxjvw"]
