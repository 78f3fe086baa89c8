"""Bits per byte counted by hand, tokenizer-independent; the cloze probe on crafted passages."""

from __future__ import annotations

import math

import pytest
import torch

from tokenmill.train.device import Runtime
from tokenmill.train.eval import (
    TextScorer,
    bits_per_byte,
    chunks,
    cloze_items,
    cloze_scores,
    text_set_bpb,
)
from tokenmill.train.keys import take_texts, texts_sha256
from tokenmill.train.model import model_config

CPU = Runtime(torch.device("cpu"))


class Uniform(torch.nn.Module):
    """A model that gives every token the same probability: exactly ln(vocab) nats per token."""

    def __init__(self, vocab: int):
        super().__init__()
        self.cfg = model_config("tiny", vocab, 8)

    def forward(self, idx, targets=None):
        return torch.zeros(*idx.shape, self.cfg.vocab_size), None


class Favours(Uniform):
    """A model whose top choice after any token is always `token`."""

    def __init__(self, vocab: int, token: int):
        super().__init__(vocab)
        self.token = token

    def forward(self, idx, targets=None):
        logits = torch.zeros(*idx.shape, self.cfg.vocab_size)
        logits[..., self.token] = 5.0
        return logits, None


class Bytes:
    """Tokenizer stand-ins: one token per UTF-8 byte, or one per pair of bytes."""

    def __init__(self, width: int):
        self.width = width

    def encode(self, texts):
        def one(text):
            data = text.encode()
            return [int.from_bytes(data[i:i + self.width], "little") for i in range(0, len(data), self.width)]
        return [one(t) for t in texts] if isinstance(texts, list) else one(texts)


def test_bpb_counts_every_token_and_byte():
    texts = ["abcdef", "héllo wörld!", "xy"]  # 6 + 14 + 2 = 22 bytes, all even
    scorer = TextScorer(Uniform(256), Bytes(1), prefix_id=2, seq_len=8, runtime=CPU)
    result = text_set_bpb(scorer, texts)
    assert result["eval_bytes"] == 22 and result["eval_tokens"] == 22
    assert result["eval_nats"] == pytest.approx(22 * math.log(256), rel=1e-6)
    assert result["bpb"] == pytest.approx(8.0, rel=1e-6)
    assert bits_per_byte(22 * math.log(256), 22) == pytest.approx(8.0)


def test_bpb_is_on_the_same_scale_for_coarser_tokens():
    """Uniform over byte pairs is the same distribution over text as uniform over bytes: per-token
    loss doubles with the vocabulary's granularity, bits per byte stays 8."""
    texts = ["abcdef", "héllo wörld!", "xy"]
    fine = text_set_bpb(TextScorer(Uniform(256), Bytes(1), 2, 8, CPU), texts)
    coarse = text_set_bpb(TextScorer(Uniform(65_536), Bytes(2), 2, 8, CPU), texts)
    assert coarse["eval_tokens"] * 2 == fine["eval_tokens"]
    assert coarse["eval_nats"] / coarse["eval_tokens"] == pytest.approx(2 * fine["eval_nats"] / fine["eval_tokens"])
    assert coarse["bpb"] == pytest.approx(fine["bpb"], rel=1e-6)


def test_chunks_make_every_token_a_target_once():
    ids = list(range(20))
    pieces = chunks(ids, 8)
    assert [t for _, t in pieces] == [list(range(1, 9)), list(range(9, 17)), list(range(17, 20))]
    assert all(len(x) == len(t) for x, t in pieces)


def test_cloze_items_and_accuracy():
    text = ("one two three four five six seven eight nine ten eleven twelve\n\nshort one\n\n"
            "we counted to the end and said twelve 12\n\nthe last word of this passage is always x")
    items = cloze_items([text], context_words=4, min_words=5, max_items=10)
    # "short one" is too short and the paragraph ending in a number has no word to guess
    assert items == [("eight nine ten eleven", "twelve"), ("this passage is always", "x")]
    tokenizer = Bytes(1)
    right = ord(" ")
    scores = cloze_scores(TextScorer(Favours(256, right), tokenizer, 2, 64, CPU), [("a b c", "")])
    assert scores["cloze_acc"] == 1.0  # the target " " is the favoured byte
    wrong = cloze_scores(TextScorer(Favours(256, right), tokenizer, 2, 64, CPU), items)
    assert wrong["cloze_acc"] == 0.0 and wrong["cloze_items"] == 2 and wrong["cloze_loglik"] < 0


def test_eval_set_is_fixed_by_bytes_and_checksum():
    texts = ["aa", "bbb", "cccc"]
    assert take_texts(iter(texts), 5) == ["aa", "bbb"]
    assert take_texts(iter(texts), 1) == ["aa"]
    assert texts_sha256(["ab", "c"]) != texts_sha256(["a", "bc"])
