"""A committed tokenizer as the steps after it use it: its files, special ids and checked loading."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import fsspec

from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.versions import Store

MODEL_FILE = "tokenizer.model"
VOCAB_FILE = "tokenizer.vocab"
UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3
# Models read in this process, by checksum: each Dask worker loads a model once, not once per part.
_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class TokenizerInfo:
    """What a pack or a training run needs to know of a tokenizer version without loading it."""

    model_url: str
    model_sha256: str
    vocab_size: int
    newline_id: int | None
    mask_id: int | None  # None for tokenizer versions made before the mask piece (tokenizer-v2)


def tokenizer_info(store: Store, tokenizer_version: str) -> TokenizerInfo:
    """The model file, checksum, vocabulary size, newline and mask pieces of a committed tokenizer version."""
    manifest = store.manifest(tokenizer_version)
    if manifest.step != "tokenizer":
        raise InputError(f"'{tokenizer_version}' is a {manifest.step} version, not a tokenizer")
    sha = next(f.sha256 for f in manifest.files if f.path == MODEL_FILE)
    url = store.uri(store.file_path(tokenizer_version, MODEL_FILE, manifest))
    stats = manifest.stats
    return TokenizerInfo(url, sha, int(stats["vocab_size"]), stats.get("newline_id"), stats.get("mask_id"))


def load_model(url: str, sha256: str) -> Any:
    """The sentencepiece model, read once per process and checked against its manifest checksum."""
    if sha256 not in _MODELS:
        import sentencepiece as spm

        with fsspec.open(url, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InputError(f"tokenizer model {url} does not match its manifest checksum")
        _MODELS[sha256] = spm.SentencePieceProcessor(model_proto=data)
    return _MODELS[sha256]


def tokenizer_model(store: Store, tokenizer_version: str) -> Any:
    """The loaded sentencepiece model of a tokenizer version."""
    info = tokenizer_info(store, tokenizer_version)
    return load_model(info.model_url, info.model_sha256)


def special_ids(sp: Any) -> list[int]:
    """The ids that stand for no text (unknown and control pieces: bos, eos, pad, mask): the masked
    objective never selects them and never draws them as random replacements."""
    return [i for i in range(sp.vocab_size()) if sp.IsControl(i) or sp.IsUnknown(i)]
