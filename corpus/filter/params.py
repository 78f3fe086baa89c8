"""The filters the filter step knows, in one registry, and the step's settings: which filters
run, in which order, each with its own thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tokenmill.corpus.filter.gopher import (
    GOPHER_QUALITY,
    GOPHER_REPETITION,
    GopherQualityParams,
    GopherRepetitionParams,
)
from tokenmill.corpus.filter.lang import LANGUAGE, LanguageParams
from tokenmill.corpus.filter.pii import PII, PiiParams
from tokenmill.corpus.filter.spec import FilterSpec, TransformSpec
from tokenmill.corpus.filter.url import URL_BLOCKLIST, UrlBlocklistParams
from tokenmill.corpus.filter.web import C4, FINEWEB, LENGTH, C4Params, FineWebParams, LengthParams
from tokenmill.corpus.store.settings import Settings

FILTERS: dict[str, FilterSpec | TransformSpec] = {
    spec.name: spec for spec in (LENGTH, URL_BLOCKLIST, LANGUAGE, GOPHER_QUALITY, GOPHER_REPETITION, C4, FINEWEB, PII)
}
FilterName = Literal["length", "url_blocklist", "language", "gopher_quality", "gopher_repetition", "c4", "fineweb", "pii"]


class FilterParams(Settings):
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
    c4: C4Params = Field(default_factory=C4Params, description="C4 page-level rules")
    fineweb: FineWebParams = Field(default_factory=FineWebParams, description="FineWeb line rules")
    pii: PiiParams = Field(default_factory=PiiParams, description="PII redaction (a transform, not a drop)")

    @field_validator("filters")
    @classmethod
    def _unique(cls, filters: list[str]) -> list[str]:
        repeated = sorted({f for f in filters if filters.count(f) > 1})
        if repeated:
            raise ValueError(f"filters listed twice: {repeated}")
        return filters
