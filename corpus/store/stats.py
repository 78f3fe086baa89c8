"""Mergeable statistics of a docs step (DESIGN §5), computed per batch with pyarrow compute.

Each partition builds a `DocStats` from the Arrow batches it writes; the driver only merges
these small objects, so no row ever travels to it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.text import utf8

# Log2 bins: bin k holds lengths in [2^(k-1), 2^k); 0 holds empty docs. 2^40 chars is beyond any doc.
LENGTH_BINS = 41
TOP_DOMAINS = 50
DOMAIN_PATTERN = r"^[hH][tT][tT][pP][sS]?://(?:[^@/]*@)?(?P<host>[^/:?#]+)"

# Drop reasons that older versions wrote, in today's words (filter-v1 said `language.keep` for
# "not in the keep list").
RENAMED_REASONS = {"filter:language.keep": "filter:language.not_kept"}


def current_reasons(stats: dict[str, Any]) -> dict[str, Any]:
    """A `stats.json` with its drops under today's reason names, so versions written before a
    rename read like new ones in reports."""
    rejected = stats.get("rejected") or {}
    if not any(reason in RENAMED_REASONS for reason in rejected):
        return stats
    return {**stats, "rejected": {RENAMED_REASONS.get(reason, reason): entry for reason, entry in rejected.items()}}


def log2_histogram(values: pa.Array) -> list[int]:
    """Counts per log2 bin, vectorized; bin edges are printed by `length_bin_edges`."""
    counts = [0] * LENGTH_BINS
    if len(values) == 0:
        return counts
    as_float = pc.cast(pc.fill_null(values, 0), pa.float64())
    bins = pc.cast(pc.ceil(pc.log2(pc.add(as_float, 1.0))), pa.int64())
    for entry in pc.value_counts(bins).to_pylist():
        counts[min(entry["values"], LENGTH_BINS - 1)] += entry["counts"]
    return counts


def length_bin_edges() -> list[int]:
    return [0] + [2 ** (k - 1) for k in range(1, LENGTH_BINS)]


def text_sizes(table: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(UTF-8 bytes, characters) of each doc's text."""
    text = table["text"]
    return pc.binary_length(text), pc.utf8_length(text)


def _sum(values: pa.Array) -> int:
    total = pc.sum(values).as_py()
    return int(total or 0)


@dataclass
class DocStats:
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    chars_out: int = 0
    words_out: int = 0
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    chars_hist: list[int] = field(default_factory=lambda: [0] * LENGTH_BINS)
    words_hist: list[int] = field(default_factory=lambda: [0] * LENGTH_BINS)
    langs: Counter = field(default_factory=Counter)
    domains: Counter = field(default_factory=Counter)
    counters: Counter = field(default_factory=Counter)

    def add_kept(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        nbytes, nchars = text_sizes(table)
        words = pa.array(utf8.word_counts(table["text"]))
        self.docs_in += table.num_rows
        self.docs_out += table.num_rows
        self.bytes_in += _sum(nbytes)
        self.bytes_out += _sum(nbytes)
        self.chars_out += _sum(nchars)
        self.words_out += _sum(words)
        self.chars_hist = _add_lists(self.chars_hist, log2_histogram(nchars))
        self.words_hist = _add_lists(self.words_hist, log2_histogram(words))
        if "lang" in table.column_names:
            for entry in pc.value_counts(table["lang"].drop_null()).to_pylist():
                self.langs[entry["values"]] += entry["counts"]
        if "source" in table.column_names:
            sources = table["source"].combine_chunks().drop_null()
            hosts = pc.struct_field(pc.extract_regex(sources, DOMAIN_PATTERN), "host").drop_null()
            for entry in pc.value_counts(pc.utf8_lower(hosts)).to_pylist():
                self.domains[entry["values"]] += entry["counts"]
            self.domains = top_domains(self.domains)

    def add_rejected(self, table: pa.Table) -> None:
        """Rejected rows count as input, by reason, with the bytes they held."""
        if table.num_rows == 0:
            return
        nbytes, _ = text_sizes(table)
        self.docs_in += table.num_rows
        self.bytes_in += _sum(nbytes)
        grouped = pa.table({"reason": table["reason"], "bytes": nbytes}).group_by("reason")
        for row in grouped.aggregate([("bytes", "sum"), ("bytes", "count")]).to_pylist():
            entry = self.rejected.setdefault(row["reason"], {"docs": 0, "bytes": 0})
            entry["docs"] += row["bytes_count"]
            entry["bytes"] += int(row["bytes_sum"] or 0)

    def merge(self, other: DocStats) -> DocStats:
        """Add `other` into these stats and return them: in place, so folding N parts' stats costs N
        small updates (the domain counter is trimmed each time, `top_domains`)."""
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.chars_out += other.chars_out
        self.words_out += other.words_out
        self.chars_hist = _add_lists(self.chars_hist, other.chars_hist)
        self.words_hist = _add_lists(self.words_hist, other.words_hist)
        self.langs.update(other.langs)
        self.domains.update(other.domains)
        self.domains = top_domains(self.domains)
        self.counters.update(other.counters)
        for reason, entry in other.rejected.items():
            target = self.rejected.setdefault(reason, {"docs": 0, "bytes": 0})
            target["docs"] += entry["docs"]
            target["bytes"] += entry["bytes"]
        return self

    @property
    def docs_rejected(self) -> int:
        return sum(entry["docs"] for entry in self.rejected.values())

    def headline(self) -> dict[str, Any]:
        """The few numbers the manifest carries and `tokenmill versions` shows."""
        return {
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "docs_rejected": self.docs_rejected,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    def to_json(self) -> dict[str, Any]:
        mean_chars = self.chars_out / self.docs_out if self.docs_out else 0.0
        return {
            **self.headline(),
            "chars_out": self.chars_out,
            "words_out": self.words_out,
            "mean_chars_per_doc": round(mean_chars, 1),
            "rejected": dict(sorted(self.rejected.items())),
            "counters": dict(sorted(self.counters.items())),
            "histograms": {
                "bin_edges": length_bin_edges(),
                "chars_per_doc": self.chars_hist,
                "words_per_doc": self.words_hist,
            },
            "langs": dict(self.langs.most_common()),
            "top_domains": dict(self.domains.most_common(TOP_DOMAINS)),
        }


def top_domains(domains: Counter) -> Counter:
    """The domains kept between merges: a few times the reported top, so merging stays linear in
    the number of parts whatever the number of hosts (counts near the cut are approximate)."""
    return Counter(dict(domains.most_common(TOP_DOMAINS * 4)))


def _add_lists(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b)]

