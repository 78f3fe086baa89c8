"""Scoring a model: bits per byte on a fixed text set, loss on the pack's val split, a cloze probe.

Bits per byte divides the model's total negative log-likelihood (nats, over every token of
every text) by ln 2 and by the texts' UTF-8 bytes. The byte count does not depend on the
tokenizer, so models with different vocabularies are compared on one scale (as in The Pile's
evaluation, Gao et al. 2020).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tokenmill.train.device import Runtime


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    return total_nats / math.log(2) / total_bytes


def texts_sha256(texts: Sequence[str]) -> str:
    """One checksum of an ordered text set; each text is length-prefixed so boundaries count."""
    sha = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        sha.update(len(data).to_bytes(8, "little"))
        sha.update(data)
    return sha.hexdigest()


def take_texts(texts: Iterable[str], max_bytes: int) -> list[str]:
    """Whole texts in order while they fit in `max_bytes` (the first always), so the set is fixed."""
    chosen, size = [], 0
    for text in texts:
        n = len(text.encode("utf-8", "surrogatepass"))
        if chosen and size + n > max_bytes:
            break
        chosen.append(text)
        size += n
    return chosen


def chunks(ids: Sequence[int], seq_len: int) -> list[tuple[list[int], list[int]]]:
    """(inputs, targets) pieces of one token sequence so that every token after the first is a target
    exactly once; each piece restarts its context (no overlap, so cost is one pass)."""
    pieces = []
    for start in range(0, len(ids) - 1, seq_len):
        targets = list(ids[start + 1:start + seq_len + 1])
        pieces.append((list(ids[start:start + len(targets)]), targets))
    return pieces


@torch.no_grad()
def token_logprobs(model: torch.nn.Module, inputs: list[int], runtime: Runtime) -> torch.Tensor:
    """Log-probabilities (float32, time x vocab) the model gives after each input token."""
    x = torch.tensor([inputs], dtype=torch.long, device=runtime.device)
    with runtime.autocast():
        logits, _ = model(x)
    return F.log_softmax(logits[0].float(), dim=-1)


def sequence_nats(model: torch.nn.Module, ids: Sequence[int], seq_len: int, runtime: Runtime) -> float:
    """Total nats of ids[1:] given what precedes each, in context pieces of `seq_len`."""
    total = 0.0
    for inputs, targets in chunks(ids, seq_len):
        logp = token_logprobs(model, inputs, runtime)
        total -= float(logp[torch.arange(len(targets)), torch.tensor(targets, device=logp.device)].sum())
    return total


@dataclass(frozen=True)
class TextScorer:
    """A model with its own tokenizer; `prefix_id` is the boundary token a document follows in the shards."""

    model: torch.nn.Module
    sp: Any
    prefix_id: int
    seq_len: int
    runtime: Runtime


def text_set_bpb(scorer: TextScorer, texts: Sequence[str]) -> dict[str, Any]:
    """Bits per byte of a text set, with the counted nats, bytes and tokens."""
    nats, n_bytes, n_tokens = 0.0, 0, 0
    for text, ids in zip(texts, scorer.sp.encode(list(texts))):
        nats += sequence_nats(scorer.model, [scorer.prefix_id, *ids], scorer.seq_len, scorer.runtime)
        n_bytes += len(text.encode("utf-8", "surrogatepass"))
        n_tokens += len(ids)
    return {"bpb": bits_per_byte(nats, n_bytes) if n_bytes else None, "eval_nats": nats,
            "eval_bytes": n_bytes, "eval_tokens": n_tokens}


@torch.no_grad()
def val_loss(model: torch.nn.Module, windows: Iterable[np.ndarray], batch_size: int, runtime: Runtime) -> dict:
    """Mean next-token loss and perplexity over validation windows (seq_len + 1 tokens each)."""
    total, count, batch = 0.0, 0, []

    def flush() -> None:
        nonlocal total, count
        rows = torch.from_numpy(np.stack(batch)).to(runtime.device)
        with runtime.autocast():
            logits, _ = model(rows[:, :-1])
        total += float(F.cross_entropy(logits.float().flatten(0, 1), rows[:, 1:].flatten(), reduction="sum"))
        count += rows[:, 1:].numel()
        batch.clear()

    for window in windows:
        batch.append(window)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not count:
        return {"val_loss": None, "val_ppl": None, "val_tokens": 0}
    loss = total / count
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 700.0)), "val_tokens": count}


WORD = re.compile(r"[A-Za-z]+")


def cloze_items(texts: Iterable[str], context_words: int, min_words: int, max_items: int) -> list[tuple[str, str]]:
    """LAMBADA-style (context, last word) pairs: one per paragraph of at least `min_words` words
    whose last word is alphabetic; the context is the words before it, at most `context_words`."""
    items = []
    for text in texts:
        for paragraph in re.split(r"\n\s*\n", text):
            words = paragraph.split()
            if len(words) < min_words:
                continue
            last = WORD.fullmatch(words[-1].rstrip(".,;:!?\"')"))
            if last is None:
                continue
            items.append((" ".join(words[-context_words - 1:-1]), last.group()))
            if len(items) == max_items:
                return items
    return items


def cloze_scores(scorer: TextScorer, items: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy (every target token the model's top choice) and mean log-likelihood of the last word,
    as lm-evaluation-harness scores LAMBADA."""
    correct, loglik = 0, 0.0
    for context, word in items:
        ctx = [scorer.prefix_id, *scorer.sp.encode(context)]
        target = scorer.sp.encode(" " + word)
        ids = (ctx + target)[-(scorer.seq_len + 1):]
        logp = token_logprobs(scorer.model, ids[:-1], scorer.runtime)[-len(target):]
        wanted = torch.tensor(target, device=logp.device)
        correct += bool(torch.equal(logp.argmax(-1), wanted))
        loglik += float(logp[torch.arange(len(target)), wanted].sum())
    if not items:
        return {"cloze_acc": None, "cloze_loglik": None, "cloze_items": 0}
    return {"cloze_acc": correct / len(items), "cloze_loglik": loglik / len(items), "cloze_items": len(items)}
