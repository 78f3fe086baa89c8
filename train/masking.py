"""The masked objective's inputs and targets: BERT's rule applied afresh to every batch.

Of the tokens that stand for text (never bos, eos, unk, pad or the mask piece itself), a share
`select` is selected; of those, `replace` become the mask piece, `random` a random text token,
and the rest stay as they are (Devlin et al. 2019, 15% and 80/10/10). The targets are the
original tokens at the selected positions and IGNORE elsewhere, so the loss is taken there
only. A new mask per batch is RoBERTa's dynamic masking (Liu et al. 2019); drawing it from a
generator seeded by (seed, step, micro-batch, rank) makes a resumed run mask exactly as the
uninterrupted one would, with no generator state to checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

IGNORE = -100  # F.cross_entropy's ignore_index: a position with no target
EVAL_SEED = 0  # the eval's fixed masks: every run of every seed is scored on the same positions


@dataclass(frozen=True)
class MaskRule:
    select: float
    replace: float
    random: float
    mask_id: int
    special: torch.Tensor  # ids never selected
    ordinary: torch.Tensor  # ids a random replacement is drawn from


def mask_rule(select: float, replace: float, random: float, mask_id: int, vocab_size: int,
              special: Sequence[int]) -> MaskRule:
    ordinary = np.setdiff1d(np.arange(vocab_size), np.asarray(special, dtype=np.int64))
    return MaskRule(select, replace, random, mask_id, torch.tensor(sorted(special), dtype=torch.long),
                    torch.from_numpy(ordinary).long())


def eval_rule(rule: MaskRule, select: float) -> MaskRule:
    """The rule the eval uses: every selected token masked, so accuracy asks only to fill in masks."""
    return MaskRule(select, 1.0, 0.0, rule.mask_id, rule.special, rule.ordinary)


def batch_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by the integers of `key` (seed, step, micro-batch, rank)."""
    seed = int(np.random.SeedSequence([k & 0xFFFFFFFF for k in key]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed)


def mask_tokens(tokens: torch.Tensor, rule: MaskRule, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of a CPU batch of token ids under `rule`."""
    selected = (torch.rand(tokens.shape, generator=generator) < rule.select) & ~torch.isin(tokens, rule.special)
    action = torch.rand(tokens.shape, generator=generator)
    randoms = rule.ordinary[torch.randint(len(rule.ordinary), tokens.shape, generator=generator)]
    inputs = torch.where(selected & (action < rule.replace), rule.mask_id, tokens)
    to_random = selected & (action >= rule.replace) & (action < rule.replace + rule.random)
    inputs = torch.where(to_random, randoms, inputs)
    return inputs, torch.where(selected, tokens, IGNORE)
