"""The filters the filter step knows, by name (`params.FilterName` lists the same names)."""

from __future__ import annotations

from tokenmill.corpus.filter.c4 import C4
from tokenmill.corpus.filter.gopher import GOPHER_QUALITY, GOPHER_REPETITION
from tokenmill.corpus.filter.lang import LANGUAGE
from tokenmill.corpus.filter.pii import PII
from tokenmill.corpus.filter.spec import FilterSpec, TransformSpec
from tokenmill.corpus.filter.url import URL_BLOCKLIST
from tokenmill.corpus.filter.web import FINEWEB, LENGTH

FILTERS: dict[str, FilterSpec | TransformSpec] = {
    spec.name: spec for spec in (LENGTH, URL_BLOCKLIST, LANGUAGE, GOPHER_QUALITY, GOPHER_REPETITION, C4, FINEWEB, PII)
}
