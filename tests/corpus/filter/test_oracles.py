"""The compiled filters against their reference oracles (`oracles.py`: each paper's rules as small,
readable Python after its source) on a generated and a real-text sample (the installed Python's
documentation). Each pair must give the same failing rules (and C4 the same retained text) on
>= 99 % of docs; a failure lists every disagreement.
"""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tokenmill.corpus.filter.params import C4Params, FineWebParams, GopherQualityParams, GopherRepetitionParams
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.spec import TextBatch, as_numpy
from tokenmill.corpus.ingest import pydocs

_spec = importlib.util.spec_from_file_location("filter_oracles", Path(__file__).parent / "oracles.py")
oracles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracles)


# --- samples and the comparison -------------------------------------------------------------------

WORDS = [
    "the", "The", "THE", "of", "and", "to", "with", "have", "be", "that", "river", "market", "history", "people",
    "городе", "река", "café", "naïve", "東京", "バカンス", "a", "I", "extraordinarily", "#tag", "#", "...", "…",
    "wİth", "theé", "data", "[1]", "[edit]", "[citation needed]", "[١٢]", "{", "}", "(see", "below)", "Mr.", "e.g.",
    "3.14", "lorem", "ipsum", "Lorem", "JavaScript", "cookie", "policy", "use", "cookies", "privacy", "terms",
    "ass", "class", "sex", "Sussex", "бля", "s&m", "🖕",
]
ENDS = [".", ".", ".", "!", "?", '"', '."', '?"', "...", "…", "", "", "", ":", ";", "'", ". [2]"]
BREAKS = ["\n"] * 8 + ["\n\n", "\n\n\n", "\r\n", "\u2028", "\x0b", "\x85", " \n", "\n  "]
SPACES = [" "] * 12 + ["\u00a0", "\u3000", "\t", "  "]


def generated_doc(rng: random.Random) -> str:
    """A page of lines of random words (stop words, symbols, citations, code, policy text, bad words,
    non-ASCII), some lines bullets, some repeated, most ending in an end mark, parted by every kind of
    line break `splitlines()` knows."""
    vocab = rng.sample(WORDS, rng.randint(8, len(WORDS)))
    lines: list[str] = []
    for _ in range(rng.randint(0, 40)):
        if lines and rng.random() < 0.15:
            lines.append(rng.choice(lines))
            continue
        words = [rng.choice(vocab) for _ in range(rng.choice([1, 2, 3, 4, 5, 6, 8, 12, 20]))]
        line = "".join(w + rng.choice(SPACES) for w in words).rstrip(" ") + rng.choice(ENDS)
        if rng.random() < 0.1:
            line = rng.choice(["- ", "• ", "* "]) + line
        lines.append(line)
    text = "".join(line + rng.choice(BREAKS) for line in lines)
    return text.rstrip("\n") if rng.random() < 0.7 else text


@pytest.fixture(scope="module")
def samples() -> dict[str, list[str]]:
    rng = random.Random(20)
    real = list(pydocs.topics().values())
    real += [text for _, text, _ in pydocs.iter_module_docs(pydocs.module_files(), budget=2**19) if text]
    return {"generated": [generated_doc(rng) for _ in range(800)], "real": real}


def compiled(name: str, texts: list[str], params: Any) -> list[tuple[set[str], str]]:
    """The compiled filter's failing rules per doc (signals stored as their column types first) and its text."""
    spec = FILTERS[name]
    batch = TextBatch(pa.table({"text": pa.array(texts, pa.large_string())}))
    values, after = spec.signals_of(batch, params)
    columns = {s.name: as_numpy(pa.array(values[s.name], s.type)) for s in spec.signals}
    fails = spec.decide(columns, params)
    rules = [{rule for rule, failing in fails if failing[i]} for i in range(len(texts))]
    return list(zip(rules, after.texts.to_pylist()))


def disagreements(name: str, texts: list[str], params: Any) -> tuple[float, list[str], Counter]:
    """(share of docs where both agree, one line per disagreement, docs failing each rule)."""
    found, fired = [], Counter()
    oracle = oracles.ORACLES[name]
    for i, (got, want) in enumerate(zip(compiled(name, texts, params), (oracle(t, params) for t in texts))):
        fired.update(want[0])
        if got[0] != want[0] or (not want[0] and got[1] != want[1]):
            found.append(f"doc {i}: compiled {sorted(got[0])} oracle {sorted(want[0])} text {texts[i][:80]!r}")
    return 1 - len(found) / len(texts), found, fired


PAPER = [("gopher_quality", GopherQualityParams()), ("gopher_repetition", GopherRepetitionParams()),
         ("c4", C4Params()), ("fineweb", FineWebParams())]
OTHER_READINGS = [
    ("gopher_quality", GopherQualityParams(distinct_stop_words=False, stop_words_case_sensitive=True,
                                           max_symbol_word_ratio=0.1)),
    ("gopher_repetition", GopherRepetitionParams(count_first_occurrence=False)),
    ("c4", C4Params(min_words_per_line=3, line_end_chars=".?!\"'", drop_javascript_lines=False,
                    drop_lorem_ipsum=False, max_word_chars=8, bad_words_match="substring")),
    ("fineweb", FineWebParams(drop_at_threshold=False, max_dup_line_chars_frac=0.01, max_newline_word_ratio=0.3)),
]
CASES = [(n, p, sample) for n, p in PAPER for sample in ("generated", "real")]
CASES += [(n, p, "generated") for n, p in OTHER_READINGS]


@pytest.mark.parametrize("name,params,sample", CASES, ids=[f"{n}-{k}-{s}" for k, (n, _, s) in enumerate(CASES)])
def test_compiled_filters_agree_with_their_reference(samples, name, params, sample):
    agreement, found, fired = disagreements(name, samples[sample], params)
    print(f"{name} on {sample}: agreement {agreement:.4f} of {len(samples[sample])} docs, failing rules {dict(fired)}")
    assert agreement >= 0.99, "\n".join(found)
    if sample == "generated":
        assert len(fired) >= 3, f"the generated sample hardly tests {name}: {dict(fired)}"
