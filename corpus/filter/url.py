"""URL block list: drop docs whose source host is a listed domain (or a subdomain of one),
or whose URL contains a listed substring. Lists come from the config and from a file."""

from __future__ import annotations

import hashlib
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.filter.params import UrlBlocklistParams
from tokenmill.corpus.filter.spec import (
    FLAG_BINS,
    Columns,
    FilterSpec,
    Rules,
    Signal,
    TextBatch,
    as_numpy,
    rule,
)
from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.store.stats import DOMAIN_PATTERN


def block_lists(params: UrlBlocklistParams) -> tuple[list[str], list[str]]:
    """(domains, substrings), lowercased and sorted, from the settings and the file."""
    domains, substrings = set(params.domains), set(params.substrings)
    if params.file:
        try:
            with fsspec.open(params.file, "rt", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise ConfigError(f"filter.url_blocklist.file: cannot read '{params.file}': {exc.strerror}") from None
        for line in (line.strip() for line in lines):
            if line.startswith("substring:"):
                substrings.add(line[len("substring:") :])
            elif line and not line.startswith("#"):
                domains.add(line)
    return sorted(d.lower().strip(".") for d in domains if d), sorted(s.lower() for s in substrings if s)


def url_settings(params: UrlBlocklistParams) -> dict[str, Any]:
    domains, substrings = block_lists(params)
    return {"lists_sha256": hashlib.sha256(repr((domains, substrings)).encode()).hexdigest()}


def url_signals(batch: TextBatch, params: UrlBlocklistParams) -> dict[str, Any]:
    domains, substrings = block_lists(params)
    urls = pc.utf8_lower(pc.fill_null(batch["source"], ""))
    hosts = pc.fill_null(pc.struct_field(pc.extract_regex(urls, DOMAIN_PATTERN), "host"), "")
    domain_hit = np.zeros(len(urls), dtype=bool)
    for domain in domains:
        exact = as_numpy(pc.equal(hosts, domain))
        sub = as_numpy(pc.ends_with(hosts, "." + domain))
        domain_hit |= exact | sub
    substring_hit = np.zeros(len(urls), dtype=bool)
    for text in substrings:
        substring_hit |= as_numpy(pc.match_substring(urls, text))
    return {"domain": domain_hit.astype(np.int8), "substring": substring_hit.astype(np.int8)}


def url_rules(s: Columns, p: UrlBlocklistParams) -> Rules:
    return [rule("domain", s["domain"] > 0), rule("substring", s["substring"] > 0)]


URL_BLOCKLIST = FilterSpec(
    name="url_blocklist",
    params=UrlBlocklistParams,
    signals=(Signal("domain", pa.int8(), FLAG_BINS), Signal("substring", pa.int8(), FLAG_BINS)),
    signal_version="url_blocklist-v1",
    compute=url_signals,
    decide=url_rules,
    signal_settings=url_settings,
)
