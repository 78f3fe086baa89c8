"""Scoring a model: bits per byte on a fixed text set, loss on the pack's val split, a cloze probe;
for a masked model, masked-token loss and accuracy instead.

Bits per byte divides the model's total negative log-likelihood (nats, over every token of
every text) by ln 2 and by the texts' UTF-8 bytes. The byte count does not depend on the
tokenizer, so models with different vocabularies are compared on one scale (as in The Pile's
evaluation, Gao et al. 2020). A masked model gives no probability of a whole text (only of
masked tokens given the rest), so it has no bits per byte; it is scored on the same text with
15% of the tokens masked at fixed positions, against the accuracy of always answering the most
frequent of the masked tokens (the best a unigram model can do there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tokenmill.train.device import Runtime
from tokenmill.train.masking import EVAL_SEED, IGNORE, MaskRule, batch_generator, mask_tokens

BPB_NOT_FOR_MASKED = ("a masked model gives no left-to-right probability of a text, so it has no bits per byte "
                      "(nor cloze): masked-token loss and accuracy on the same eval text are reported instead")


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    return total_nats / math.log(2) / total_bytes


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


@dataclass(frozen=True)
class TextScorer:
    """A model with its own tokenizer; `prefix_id` is the boundary token a document follows in the shards."""

    model: torch.nn.Module
    sp: Any
    prefix_id: int
    seq_len: int
    runtime: Runtime


def text_set_bpb(scorer: TextScorer, texts: Sequence[str], batch_size: int = 8) -> dict[str, Any]:
    """Bits per byte of a text set, with the counted nats, bytes and tokens: each text cut into
    context pieces (`chunks`), `batch_size` pieces per forward pass."""
    pieces, n_bytes, n_tokens = [], 0, 0
    for text, ids in zip(texts, scorer.sp.encode(list(texts))):
        pieces += chunks([scorer.prefix_id, *ids], scorer.seq_len)
        n_bytes += len(text.encode("utf-8", "surrogatepass"))
        n_tokens += len(ids)
    tally = Tally()
    for start in range(0, len(pieces), batch_size):
        group = pieces[start:start + batch_size]
        tally.add(scorer.model, right_padded([x for x, _ in group], 0), right_padded([t for _, t in group], IGNORE),
                  scorer.runtime)
    return {"bpb": bits_per_byte(tally.nats, n_bytes) if n_bytes else None, "eval_nats": tally.nats,
            "eval_bytes": n_bytes, "eval_tokens": n_tokens}


def right_padded(rows: Sequence[Sequence[int]], fill: int) -> torch.Tensor:
    """Rows of token ids as one (rows x longest) tensor, `fill` after each row's end. A causal model's
    outputs at a row's positions do not depend on what follows them, so padded rows score as alone."""
    out = torch.full((len(rows), max(len(row) for row in rows)), fill, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


@dataclass
class Tally:
    """Summed loss (nats), correct top choices and targets, with the targets' counts per token id
    (for the unigram baseline)."""

    nats: float = 0.0
    correct: int = 0
    count: int = 0
    ids: np.ndarray | None = None

    @torch.no_grad()
    def add(self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, runtime: Runtime) -> None:
        """Score a batch at its targets (IGNORE elsewhere)."""
        with runtime.autocast():
            logits, _ = model(inputs.to(runtime.device))
        # Over the flat view, IGNORE left out by the loss: selecting the chosen rows first copied the
        # whole (batch, length, vocabulary) logits, which took 40% of a scoring batch on CPU.
        logits, targets = logits.flatten(0, 1).float(), targets.flatten().to(logits.device)
        chosen = targets != IGNORE
        self.nats += float(F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum"))
        self.correct += int(((logits.argmax(-1) == targets) & chosen).sum())
        self.count += int(chosen.sum())
        counts = np.bincount(targets[chosen].cpu().numpy(), minlength=logits.size(-1))
        self.ids = counts if self.ids is None else self.ids + counts


def pairs(rows: torch.Tensor, rule: MaskRule | None, generator: torch.Generator | None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of windows of seq_len + 1 tokens: the next tokens, or the masked ones."""
    if rule is None:
        return rows[:, :-1], rows[:, 1:]
    return mask_tokens(rows[:, :-1], rule, generator)


def val_loss(model: torch.nn.Module, windows: Iterable[np.ndarray], batch_size: int, runtime: Runtime,
             rule: MaskRule | None = None) -> dict:
    """Mean loss and perplexity over validation windows (seq_len + 1 tokens each): next-token loss, or
    with a mask rule the masked-token loss at positions fixed by the eval seed."""
    tally, batch = Tally(), []
    generator = batch_generator(EVAL_SEED) if rule is not None else None
    model.eval()

    def flush() -> None:
        tally.add(model, *pairs(torch.from_numpy(np.stack(batch)), rule, generator), runtime)
        batch.clear()

    for window in windows:
        batch.append(window)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not tally.count:
        return {"val_loss": None, "val_ppl": None, "val_tokens": 0}
    loss = tally.nats / tally.count
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 700.0)), "val_tokens": tally.count}


def masked_text_scores(scorer: TextScorer, texts: Sequence[str], rule: MaskRule) -> dict[str, Any]:
    """Masked-token loss and accuracy over a text set cut into pieces of the model's context, every
    selected token masked at positions fixed by the eval seed, beside the unigram baseline."""
    tally, generator, n_bytes, n_tokens = Tally(), batch_generator(EVAL_SEED), 0, 0
    for text, ids in zip(texts, scorer.sp.encode(list(texts))):
        tokens = [scorer.prefix_id, *ids]
        for start in range(0, len(tokens), scorer.seq_len):
            piece = torch.tensor([tokens[start:start + scorer.seq_len]], dtype=torch.long)
            tally.add(scorer.model, *mask_tokens(piece, rule, generator), scorer.runtime)
        n_bytes += len(text.encode("utf-8", "surrogatepass"))
        n_tokens += len(ids)
    found = tally.count > 0
    return {"bpb": None, "bpb_note": BPB_NOT_FOR_MASKED, "eval_bytes": n_bytes, "eval_tokens": n_tokens,
            "mlm_loss": tally.nats / tally.count if found else None,
            "mlm_acc": tally.correct / tally.count if found else None,
            "mlm_unigram_acc": int(tally.ids.max()) / tally.count if found else None,
            "mlm_tokens": tally.count}


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


def continuation_logprobs(scorer: TextScorer, context: list[int], target: list[int]) -> torch.Tensor:
    """Log-probabilities (target tokens x vocab) at each token of `target` after the document boundary and
    `context`; a context too long for the model loses its start."""
    ids = ([scorer.prefix_id, *context] + target)[-(scorer.seq_len + 1):]
    return token_logprobs(scorer.model, ids[:-1], scorer.runtime)[-len(target):]


def cloze_scores(scorer: TextScorer, items: Sequence[tuple[str, str]], batch_size: int = 8) -> dict[str, Any]:
    """Accuracy (every target token the model's top choice) and mean log-likelihood of the last word,
    as lm-evaluation-harness scores LAMBADA; `batch_size` items per forward pass."""
    correct, loglik = 0, 0.0
    for start in range(0, len(items), batch_size):
        group = items[start:start + batch_size]
        targets = [scorer.sp.encode(" " + word) for _, word in group]
        inputs = [([scorer.prefix_id, *scorer.sp.encode(context)] + target)[-(scorer.seq_len + 1):-1]
                  for (context, _), target in zip(group, targets)]
        with torch.no_grad(), scorer.runtime.autocast():
            logits, _ = scorer.model(right_padded(inputs, 0).to(scorer.runtime.device))
        for row, (ids, target) in enumerate(zip(inputs, targets)):
            logp = F.log_softmax(logits[row, len(ids) - len(target):len(ids)].float(), dim=-1)
            wanted = torch.tensor(target, device=logp.device)
            correct += bool(torch.equal(logp.argmax(-1), wanted))
            loglik += float(logp[torch.arange(len(target)), wanted].sum())
    if not items:
        return {"cloze_acc": None, "cloze_loglik": None, "cloze_items": 0}
    return {"cloze_acc": correct / len(items), "cloze_loglik": loglik / len(items), "cloze_items": len(items)}
