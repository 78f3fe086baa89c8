"""Multiple choice, zero-shot, as lm-evaluation-harness scores it: each choice's log-likelihood as
the continuation of the context, the highest one the model's answer.

Summed log-likelihood favours short choices (every token costs probability), so the harness
also reports it divided by the choice's characters (`acc_norm`); `normalize` picks which is the
accuracy. Only a causal model gives a continuation's log-likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tokenmill.train.eval import TextScorer, continuation_logprobs
from tokenmill.train.tasks import ChoiceItem

CAUSAL_ONLY = "multiple choice is scored by a continuation's log-likelihood, which only a causal model gives"


def choice_loglik(scorer: TextScorer, context: list[int], choice: str, normalize: str) -> float:
    """One choice's log-likelihood after the context: summed, or per character or token of the choice. A choice
    longer than the model's context is scored on as many of its first tokens as fit."""
    target = scorer.sp.encode(choice)[:scorer.seq_len]
    logp = continuation_logprobs(scorer, context, target)
    total = float(logp[torch.arange(len(target)), torch.tensor(target, device=logp.device)].sum())
    return total / {"none": 1, "chars": len(choice), "tokens": len(target)}[normalize]


def choice_scores(scorer: TextScorer, items: Sequence[ChoiceItem], normalize: str) -> dict[str, Any]:
    """Accuracy over the items, with the accuracy that chance would get, for the task's entry in the scores."""
    scorer.model.eval()
    correct = 0
    for item in items:
        context = scorer.sp.encode(item.context)
        scores = [choice_loglik(scorer, context, choice, normalize) for choice in item.choices]
        correct += max(range(len(scores)), key=scores.__getitem__) == item.gold
    return {"accuracy": correct / len(items), "items": len(items), "normalize": normalize,
            "chance": sum(1 / len(item.choices) for item in items) / len(items)}
