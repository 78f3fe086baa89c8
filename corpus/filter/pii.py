"""PII redaction: a transform, not a drop. E-mail addresses, public IPv4 addresses and
(optionally) phone numbers become placeholders, and every replacement is counted.

E-mails are replaced by pyarrow's RE2 over the whole batch; IP candidates need a check
that the address is public (private, loopback and documentation ranges are no PII), so
only the texts that hold a candidate go through Python.
"""

from __future__ import annotations

import functools
import ipaddress
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.filter.params import PiiParams
from tokenmill.corpus.filter.spec import TransformSpec, as_numpy, count_regex
from tokenmill.corpus.text.re2 import map_rows

EMAIL_RE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
IPV4_RE = r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b"
PHONE_RE = r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?|\d{2,4}[ .\-])\d{3,4}[ .\-]\d{3,4}\b"


def is_public_ip(address: str) -> bool:
    return ipaddress.ip_address(address).is_global


def redact_ips(text: str, placeholder: str) -> tuple[str, int]:
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if is_public_ip(match.group()):
            count += 1
            return placeholder
        return match.group()

    return re.sub(IPV4_RE, replace, text), count


def redact_batch(texts: pa.Array, params: PiiParams) -> tuple[pa.Array, dict[str, int]]:
    """The texts with PII replaced, and counts per kind plus docs changed; only rows with a match are rewritten."""
    counts: dict[str, int] = {}
    changed = np.zeros(len(texts), dtype=bool)
    texts = texts.cast(pa.large_string())
    kinds = [("email", params.email, EMAIL_RE, params.email_placeholder)]
    kinds.append(("phone", params.phone, PHONE_RE, params.phone_placeholder))
    for kind, enabled, pattern, placeholder in kinds:
        if not enabled:
            continue
        hits = count_regex(texts, pattern)
        counts[f"pii.{kind}"] = int(hits.sum())
        changed |= hits > 0
        replacement = placeholder.replace("\\", "\\\\")
        redact = functools.partial(pc.replace_substring_regex, pattern=pattern, replacement=replacement)
        texts, _ = map_rows(texts, pa.array(hits > 0), redact)
    if params.ip:
        candidates = pc.match_substring_regex(texts, IPV4_RE)
        redacted = [redact_ips(text, params.ip_placeholder) for text in texts.filter(candidates).to_pylist()]
        counts["pii.ip"] = sum(n for _, n in redacted)
        changed[as_numpy(candidates)] |= np.array([n > 0 for _, n in redacted], dtype=bool)
        if redacted:
            texts = pc.replace_with_mask(texts, candidates, pa.array([text for text, _ in redacted], texts.type))
    counts["pii.docs_changed"] = int(changed.sum())
    return texts, counts


PII = TransformSpec(name="pii", params=PiiParams, apply=redact_batch)
