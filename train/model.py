"""A Transformer in plain PyTorch, one class per concept (after nanoGPT's model.py).

LLaMA-style choices: RMSNorm before each block, rotary position embeddings, a SwiGLU MLP, no
biases, the token embedding tied with the output head. Attention goes through
`F.scaled_dot_product_attention`, which picks the flash kernel on CUDA: causal for the causal
objective (a decoder, GPT), bidirectional for the masked one (an encoder, BERT) — the same
blocks either way, so both objectives share the code, the checkpoints and the shards.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.store.settings import Settings
from tokenmill.train.masking import IGNORE


class ModelConfig(Settings):
    vocab_size: int = Field(ge=2, description="token ids the embedding holds (the tokenizer's vocabulary)")
    seq_len: int = Field(ge=1, description="longest context the model is trained on")
    n_layer: int = Field(ge=1, description="Transformer blocks")
    n_head: int = Field(ge=1, description="attention heads per block")
    d_model: int = Field(ge=2, description="width of the residual stream")
    ffn_hidden: int = Field(default=0, ge=0, description="SwiGLU hidden width; 0 derives 8/3 d_model rounded to 64")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on attention and residual outputs")
    rope_theta: float = Field(default=10_000.0, gt=0, description="RoPE base frequency")
    causal: bool = Field(default=True, description="each position attends to those before it only (False: to all)")

    @model_validator(mode="after")
    def _resolve(self) -> ModelConfig:
        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.n_head} heads of even width")
        if self.ffn_hidden == 0:
            # 8/3 d keeps SwiGLU's three matrices at the parameter count of a 4d GELU MLP (Shazeer 2020).
            self.ffn_hidden = 64 * math.ceil(8 * self.d_model / 3 / 64)
        return self


# Named sizes: `tiny` trains in seconds on a CPU; `small` is ~23 M parameters at a 32k vocabulary; `gpt2` is
# GPT-2 small's shape, ~110 M at 32k and 124 M at GPT-2's 50,257 vocabulary.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "d_model": 64},
    "small": {"n_layer": 6, "n_head": 6, "d_model": 384},
    "gpt2": {"n_layer": 12, "n_head": 12, "d_model": 768},
}


def model_config(size: str, vocab_size: int, seq_len: int, dropout: float = 0.0, causal: bool = True,
                 **dims: int | None) -> ModelConfig:
    """A named size with any explicit dims (`n_layer`, `n_head`, `d_model`, `ffn_hidden`) taking precedence."""
    if size not in SIZES:
        raise ConfigError(f"train.model: unknown size '{size}' (known: {', '.join(SIZES)})")
    chosen = {**SIZES[size], **{k: v for k, v in dims.items() if v is not None}}
    try:
        return ModelConfig(vocab_size=vocab_size, seq_len=seq_len, dropout=dropout, causal=causal, **chosen)
    except ValueError as error:
        raise ConfigError(f"train.model: {error}") from None


class RMSNorm(nn.Module):
    """Scale by the root mean square only: no mean, no bias (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, frequency) pair, shaped (seq_len, head_dim / 2)."""
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of x (batch, heads, time, head_dim) by its position's angle."""
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return rotated.type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.dropout, self.causal = cfg.n_head, cfg.dropout, cfg.causal
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor | None = None
                ) -> torch.Tensor:
        """`keys` (batch, time; True where a real token is) hides padding from a bidirectional model;
        a causal one needs no mask for padding on the right."""
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in self.qkv(x).split(d, dim=2))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask = None if keys is None or self.causal else keys[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal)
        return self.resid_drop(self.proj(y.transpose(1, 2).contiguous().view(b, t, d)))


class SwiGLU(nn.Module):
    """silu(x W1) * (x W3), then W2 (Shazeer 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.proj = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.mlp_norm, self.mlp = RMSNorm(cfg.d_model), SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor | None = None
                ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, keys)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied: saves vocab x d parameters (Press & Wolf 2017)
        cos, sin = rope_tables(cfg.d_model // cfg.n_head, cfg.seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                # Residual branches scaled by 1/sqrt(2 * layers), as GPT-2 does, so the stream's variance stays put.
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters counted once (the tied head shares the embedding's)."""
        return sum(p.numel() for p in self.parameters())

    def hidden(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """The final normed states (batch, time, d_model): what the head reads, and what a classifier pools."""
        t = idx.shape[1]
        if t > self.cfg.seq_len:
            raise ValueError(f"sequence of {t} tokens exceeds the model's seq_len {self.cfg.seq_len}")
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.drop(self.embed(idx))
        for block in self.blocks:
            x = block(x, cos, sin, keys)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position, or with targets the mean cross-entropy over the positions that have one
        (not IGNORE). A bidirectional model then runs the head only there: 15% of the positions, where the head
        of a small model over a large vocabulary is most of the cost."""
        x = self.hidden(idx)
        if targets is None:
            return self.head(x), None
        if not self.cfg.causal:
            chosen = targets != IGNORE
            x, targets = x[chosen], targets[chosen]
        logits = self.head(x)
        total = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), reduction="sum",
                                ignore_index=IGNORE)
        return logits, total / max(1, targets.numel())


def count_params(cfg: ModelConfig) -> int:
    """Parameters of `GPT(cfg)` without building it: tied embedding, per block two gains, attention
    (4 d^2) and SwiGLU (3 d f), and the final gain."""
    d = cfg.d_model
    return cfg.vocab_size * d + cfg.n_layer * (2 * d + 4 * d * d + 3 * d * cfg.ffn_hidden) + d


def flops_per_token(cfg: ModelConfig, n_params: int) -> float:
    """Training FLOPs per token: 6N for the weights plus 12·L·d·T for attention scores (PaLM, appendix B)."""
    return 6.0 * n_params + 12.0 * cfg.n_layer * cfg.d_model * cfg.seq_len
