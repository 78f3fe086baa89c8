"""The model: causal, sized as named, parameter count known without building it."""

from __future__ import annotations

import pytest
import torch

from tokenmill.corpus.store.errors import ConfigError
from tokenmill.train.model import GPT, count_params, flops_per_token, model_config


def test_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = GPT(model_config("tiny", 50, 16)).eval()
    x = torch.randint(0, 50, (1, 16))
    changed = x.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 50
    a, _ = model(x)
    b, _ = model(changed)
    assert torch.allclose(a[0, :10], b[0, :10])
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_named_sizes_and_counts():
    assert GPT(model_config("tiny", 300, 32)).num_params() == count_params(model_config("tiny", 300, 32))
    assert 22e6 < count_params(model_config("small", 32_000, 1024)) < 26e6
    assert 123e6 < count_params(model_config("gpt2", 50_257, 1024)) < 125e6
    cfg = model_config("tiny", 300, 32, n_layer=3)
    assert (cfg.n_layer, cfg.d_model, cfg.ffn_hidden) == (3, 64, 192)
    model = GPT(cfg)
    assert model.head.weight is model.embed.weight
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert flops_per_token(cfg, 1000) == 6000 + 12 * 3 * 64 * 32


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="unknown size 'huge'"):
        model_config("huge", 300, 32)
    with pytest.raises(ConfigError, match="heads of even width"):
        model_config("tiny", 300, 32, n_head=3)


def test_residual_projections_are_scaled_by_depth():
    model = GPT(model_config("tiny", 300, 32, n_layer=8, d_model=256, n_head=4))
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.1)
    assert model.blocks[0].mlp.gate.weight.std().item() == pytest.approx(0.02, rel=0.1)
