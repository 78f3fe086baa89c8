"""fastText supervised-model inference (lid.176.ftz) for a whole batch of lines at once: numpy, and numba for subwords.

fastText's C++ `predict` costs ~0.85 s per 10 MB of text one line at a time; the filter step
needs ~0.2 s. The maths is small (Joulin et al. 2016): a line's vector is the mean of the input
rows of its words and their char n-grams, and the label is the best leaf of a hierarchical
softmax. It is fast here because words repeat (Zipf): each distinct word of a batch is hashed
and summed once, then word sums are added up per line. The semantics follow
facebookresearch/fastText: `Dictionary::getLine`, `computeSubwords`, `pushHash`,
`addWordNgrams`, `QuantMatrix`, `HierarchicalSoftmaxLoss::dfs` and `SoftmaxLoss`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.filter.lid176.fasttext_file import (
    Args,
    Reader,
    huffman_paths,
    read_dense,
    read_quantized,
)
from tokenmill.corpus.filter.lid176.kernels import FNV_OFFSET, FNV_PRIME, bucket_bits, subword_sums
from tokenmill.corpus.text.utf8 import utf8_bytes

MAGIC, VERSION = 793712314, 12
LOSS_HS, LOSS_SOFTMAX, MODEL_SUPERVISED = 1, 3, 3
EOS, LABEL_PREFIX = b"</s>", b"__label__"
WORD_NGRAM_PRIME = 116049371
# fastText hashes its (signed) chars sign-extended to uint32; released models depend on it.
SIGNED_BYTE = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int32).view(np.uint32)
# What `readWord` splits words on besides the space: \t \n \v \f \r and \0, all below 14.
SEPARATOR = np.isin(np.arange(256), [0, 9, 10, 11, 12, 13])
CHUNK_LINES = 1 << 14  # lines per pass: keeps a pass's temporaries near 100 MB
CHUNK_ITEMS = 1 << 18  # words gathered at once when summing per line: 16 MB at dim 16


def column_sums(columns: np.ndarray, index: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """[dim, owner]: per owner, the sum of the columns `columns[:, index]` it owns, for owners in any
    order with a few items each (word n-grams of a line): one bincount per dimension, 2-3x faster
    than gathering rows and `reduceat` for few items per owner."""
    return np.stack([np.bincount(owners, weights=column[index], minlength=n) for column in columns])


def segment_sums(columns: np.ndarray, index: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """Like `column_sums` for sorted owners with many items each (words of a line): `reduceat` over
    contiguous gathered columns, 16 ms against 60 ms of bincounts for 550k words of 3.3k lines,
    gathered CHUNK_ITEMS at a time to bound memory."""
    out = np.zeros((columns.shape[0], n), dtype=np.float64)
    for lo in range(0, len(owners), CHUNK_ITEMS):
        part = owners[lo : lo + CHUNK_ITEMS]
        heads = np.flatnonzero(np.concatenate(([True], part[1:] != part[:-1])))
        out[:, part[heads]] += np.add.reduceat(np.take(columns, index[lo : lo + CHUNK_ITEMS], axis=1), heads, axis=1)
    return out


def fnv_hashes(raw: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """`Dictionary::hash` of each `raw[bounds[i]:bounds[i+1]]`, as the int32 `getLine` keeps."""
    index, pos, end = np.arange(len(bounds) - 1), bounds[:-1].copy(), bounds[1:]
    h = np.full(len(index), FNV_OFFSET, dtype=np.uint32)
    while len(index):
        live = pos < end
        index, pos, end = index[live], pos[live], end[live]
        h[index] = (h[index] ^ SIGNED_BYTE[raw[pos]]) * np.uint32(FNV_PRIME)
        pos += 1
    return h.view(np.int32)


class Lid176:
    """A fastText supervised model (hierarchical softmax or softmax loss) that predicts each line's top label."""

    def __init__(self, data: bytes) -> None:
        r = Reader(data)
        magic, version = r.fields("ii")
        if (magic, version) != (MAGIC, VERSION):
            raise ValueError(f"not a fastText v{VERSION} model (magic {magic}, version {version})")
        self.args = Args(*r.fields("12id"))
        if self.args.model != MODEL_SUPERVISED or self.args.loss not in (LOSS_HS, LOSS_SOFTMAX):
            raise ValueError(f"only supervised models with hs or softmax loss are supported: {self.args}")
        size, self.nwords, _, _, prune_size = r.fields("iiiqq")
        entries = [(r.cstring(), r.fields("qb")[0]) for _ in range(size)]
        self.vocab = pa.array([word for word, _ in entries[: self.nwords]], pa.large_binary())
        labels = entries[self.nwords :]
        self.labels = np.array([label.removeprefix(LABEL_PREFIX).decode() for label, _ in labels], dtype=object)
        pruned = r.array("<i4", 2 * max(prune_size, 0)).reshape(-1, 2)
        # Input row of each n-gram bucket, -1 where pruning dropped it (`pushHash`).
        if prune_size < 0:
            self.bucket_rows = self.nwords + np.arange(self.args.bucket, dtype=np.int32)
        else:
            self.bucket_rows = np.full(self.args.bucket, -1, dtype=np.int32)
            self.bucket_rows[pruned[:, 0]] = self.nwords + pruned[:, 1]
        self.bucket_bits = bucket_bits(self.bucket_rows)
        (quantized,) = r.fields("?")
        self.rows = read_quantized(r) if quantized else read_dense(r)  # [row, dim]
        self.columns = np.ascontiguousarray(self.rows.T)  # [dim, row]
        (qout,) = r.fields("?")
        self.output = read_quantized(r) if qout else read_dense(r)
        eos = self.vocab.index(pa.scalar(EOS, pa.large_binary())).as_py()
        self.eos = eos if eos >= 0 else None
        if self.args.loss == LOSS_HS:
            self.paths = huffman_paths(np.array([count for _, count in labels], dtype=np.float64))

    def predict(self, lines: pa.Array | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per line, the top label (without "__label__"; "" where the line has no input rows) and its
        probability, as fastText's `predict(line, k=1)` gives them."""
        if not isinstance(lines, (pa.Array, pa.ChunkedArray)):
            lines = pa.array(lines, pa.large_string())
        lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
        labels, scores = np.full(len(lines), "", dtype=object), np.zeros(len(lines), dtype=np.float32)
        for lo in range(0, len(lines), CHUNK_LINES):
            sums, counts = self.hidden(lines.slice(lo, CHUNK_LINES))
            best, score = self.top_label((sums / np.maximum(counts, 1)).T.astype(np.float32))
            some = counts > 0
            labels[lo : lo + len(counts)][some] = self.labels[best[some]]
            scores[lo : lo + len(counts)][some] = np.minimum(np.exp(score[some]), 1.0)
        return labels, scores

    def hidden(self, lines: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Per line, the sum ([dim, line]) and number of the input rows of its words, their n-grams and "</s>"."""
        words, word, line = self.line_words(lines)
        word_sum, word_count = self.word_sums(words)
        sums = segment_sums(word_sum, word, line, len(lines))
        counts = np.bincount(line, weights=word_count[word], minlength=len(lines))
        if self.eos is not None:
            sums += self.columns[:, self.eos : self.eos + 1]
            counts += 1
        if self.args.word_ngrams > 1:
            ngram_rows, ngram_line = self.word_ngram_rows(words, word, line, len(lines))
            sums += column_sums(self.columns, ngram_rows, ngram_line, len(lines))
            counts += np.bincount(ngram_line, minlength=len(lines))
        return sums, counts

    def line_words(self, lines: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """The distinct words of all lines, and per occurrence its word and line, as `getLine` reads
        them: split on fastText's separators, labels left out, nothing after a literal "</s>"."""
        raw, bounds = utf8_bytes(lines)
        low = raw[bounds[0] : bounds[-1]]
        for byte in np.unique(low[low < 14]).tolist():
            if SEPARATOR[byte]:
                lines = pc.replace_substring(lines, chr(byte), " ")
        tokens = pc.split_pattern(lines, " ")
        encoded = pc.list_flatten(tokens).dictionary_encode()
        words, word = encoded.dictionary, encoded.indices.to_numpy()
        line = np.repeat(np.arange(len(lines)), np.diff(tokens.offsets.to_numpy()))
        keep = []
        skip = pc.or_(pc.equal(pc.binary_length(words), 0), pc.starts_with(words, LABEL_PREFIX.decode()))
        if pc.any(skip).as_py():
            keep.append(~skip.to_numpy(zero_copy_only=False)[word])
        eos = words.index(EOS.decode()).as_py()
        if eos >= 0:
            hits = np.flatnonzero(word == eos)
            first = hits[np.concatenate(([True], line[hits[1:]] != line[hits[:-1]]))]
            cut = np.full(len(lines), len(word))
            cut[line[first]] = first
            keep.append(np.arange(len(word)) < cut[line])
        if keep:
            keep = np.logical_and.reduce(keep)
            word, line = word[keep], line[keep]
        return words, word, line

    def word_sums(self, words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Per distinct word, the sum ([dim, word]) and number of its input rows (`addSubwords`): its
        own row if in the vocabulary, and the rows of its char n-grams that pruning kept."""
        ids = pc.index_in(words.cast(pa.large_binary()), value_set=self.vocab).fill_null(-1).to_numpy()
        raw, bounds = utf8_bytes(words)
        sums, counts = subword_sums(
            raw, bounds, ids.astype(np.int64), self.args.minn, self.args.maxn, self.bucket_rows, self.bucket_bits,
            self.rows,
        )
        return sums.T.astype(np.float32), counts

    def word_ngram_rows(
        self, words: pa.Array, word: np.ndarray, line: np.ndarray, n_lines: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`addWordNgrams`: the input rows of each line's word n-grams that pruning kept, and their
        lines. Word hashes are int32 sign-extended and chained with 116049371 in uint64; the line's
        closing "</s>" counts as a word."""
        eos = fnv_hashes(np.frombuffer(EOS, dtype=np.uint8), np.array([0, len(EOS)]))
        hashes = np.append(fnv_hashes(*utf8_bytes(words)), eos).astype(np.int64).view(np.uint64)
        ends = np.cumsum(np.bincount(line, minlength=n_lines) + 1)
        seq = np.full(ends[-1] if n_lines else 0, len(hashes) - 1)
        is_word = np.ones(len(seq), dtype=bool)
        is_word[ends - 1] = False
        seq[is_word] = word
        seq, seq_line = hashes[seq], np.repeat(np.arange(n_lines), np.diff(ends, prepend=0))
        h, rows, owners = seq.copy(), [], []
        for k in range(1, self.args.word_ngrams):
            h[:-k] = h[:-k] * np.uint64(WORD_NGRAM_PRIME) + seq[k:]
            at = np.flatnonzero(np.arange(len(seq)) + k < ends[seq_line])
            found = self.bucket_rows[(h[at] % np.uint64(self.args.bucket)).astype(np.int64)]
            rows.append(found[found >= 0])
            owners.append(seq_line[at][found >= 0])
        return np.concatenate(rows), np.concatenate(owners)

    def top_label(self, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best label and its log-probability per row of `hidden`. Hierarchical softmax scores each leaf
        by the sum of std_log(sigmoid(+-w.h)) along its path: what `dfs` finds, as two matrix products."""
        if self.args.loss == LOSS_HS:
            left_paths, right_paths = self.paths
            # Internal node i of the n_labels - 1 uses output row i.
            with np.errstate(over="ignore"):  # exp overflow gives sigmoid 0, as in C++
                right = 1.0 / (1.0 + np.exp(-(hidden @ self.output[: len(left_paths)].T)))
            scores = np.log(1.0 - right + 1e-5) @ left_paths + np.log(right + 1e-5) @ right_paths
        else:
            logits = hidden @ self.output.T
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            scores = np.log(exp / exp.sum(axis=1, keepdims=True) + 1e-5)
        best = scores.argmax(axis=1)
        return best, scores[np.arange(len(best)), best]


@functools.lru_cache(maxsize=4)
def load(path: str | Path) -> Lid176:
    """One parsed model per file and process."""
    return Lid176(Path(path).read_bytes())
