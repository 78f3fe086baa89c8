"""A fetched page to text and links, on a Dask worker so the crawler's event loop only fetches.

Text comes from `extract.html_to_text`, the function the load step uses, so a crawled page and
the same page loaded from a file give the same doc.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import time
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

from tokenmill.corpus.crawl.anchors import scanned_hrefs
from tokenmill.corpus.crawl.urls import normalize_url
from tokenmill.corpus.ingest.extract import html_to_text

if TYPE_CHECKING:
    from resiliparse.parse.html import HTMLTree

META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
SNIFF_BYTES = 4096
BASE_TAG = re.compile(r"<base", re.IGNORECASE)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def header_charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def _known(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


def page_charset(body: bytes, content_type: str | None) -> str:
    """The header's charset, else a `<meta charset>` in the first 4 KB, else a detector's guess."""
    charset = _known(header_charset(content_type))
    if charset is None and media_type(content_type) == "text/html":
        match = META_CHARSET.search(body[:SNIFF_BYTES])
        charset = _known(match.group(1).decode("ascii")) if match else None
    if charset is None:
        from resiliparse.parse.encoding import detect_encoding

        charset = _known(detect_encoding(body)) or "utf-8"
    return charset


def page_links(tree: HTMLTree, base_url: str, strip_params: tuple[str, ...] = (), html: str | None = None) -> list[str]:
    """The normalized targets of the page's `<a href>` links, resolved against `<base href>` or the
    page URL, each once, in page order (done here on the worker, not on the crawl's event loop).
    The hrefs are read from the tree's serialization (`anchors`) where that gives as many as the
    tree holds. Given the page's `html`, a page without "<base" in it skips the search of its tree
    for one (0.05 ms for the text against 0.15 ms for the tree, per 54 KB page)."""
    base = tree.document.query_selector("base[href]") if html is None or BASE_TAG.search(html) else None
    if base is not None:
        base_url = urljoin(base_url, base.getattr("href") or "")
    anchors = tree.document.query_selector_all("a[href]")
    scanned = scanned_hrefs(tree.document.html, len(anchors))
    # `.values()`: iterating the collection itself costs O(n) per element in resiliparse 2.0
    # (70 ms for the 100 links of a documentation page, against 1 ms this way).
    raw = scanned if scanned is not None else (a.getattr("href") or "" for a in anchors.values())
    hrefs = dict.fromkeys(without_fragment(href.strip()) for href in raw)
    del base, anchors
    folder = base_folder(base_url)
    links = (resolved_link(href, strip_params, base_url if href[:1] in ("", "?", "#") else folder) for href in hrefs)
    return list(dict.fromkeys(link for link in links if link))


def without_fragment(href: str) -> str:
    """`href` less its `#fragment`, which normalizing drops anyway, so one page's anchors are one
    cache entry (its `#section` links one with its `""`); kept where whitespace precedes the `#`
    (it would stay in the resolved path)."""
    before, hash_sign, _ = href.partition("#")
    return before if hash_sign and not before[-1:].isspace() else href


def base_folder(url: str) -> str:
    """`url` up to the last `/` of its path: all that a link with a path of its own depends on
    (RFC 3986 §5.2.2-5.2.3); a link that is empty or only a query or fragment needs all of `url`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path[: parts.path.rfind("/") + 1] or "/", "", ""))


# A path of these characters with no empty, `.` or `..` segment (urljoin drops or resolves those)
# and no `//` authority: joined to a plain folder it is the folder's origin plus itself, or the
# folder plus itself, and normal as it stands.
PLAIN_PATH = re.compile(r"(?!.*//)(?!\.\.?(?:/|$))(?!.*/\.\.?(?:/|$))[A-Za-z0-9_~/.-]+")


@lru_cache(maxsize=1 << 12)
def plain_folder(url: str) -> bool:
    """Whether `url` is normalized, ends with `/` and has a plain path."""
    return url.endswith("/") and normalize_url(url) == url and PLAIN_PATH.fullmatch(urlsplit(url).path) is not None


# Pages of one site repeat most of their links (menus, sidebars, the same folder's relative links):
# remembered per base folder, a documentation page's ~100 links resolve in a tenth of the time.
@lru_cache(maxsize=1 << 16)
def resolved_link(href: str, strip_params: tuple[str, ...], base: str) -> str | None:
    """`normalize_url(href, strip_params, base)`, without urllib for a plain path from a plain folder
    (a documentation site's new links: 12 us on average against 28): a crawl meets each of its
    site's links here once per worker."""
    if PLAIN_PATH.fullmatch(href) and plain_folder(base):
        return base[: base.index("/", base.index("//") + 2)] + href if href.startswith("/") else base + href
    return normalize_url(href, strip_params, base)


def extract_page(body: bytes, content_type: str | None, url: str,
                 strip_params: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """(main text, normalized absolute links) of one response body, from one parse of it."""
    from resiliparse.parse.html import HTMLTree

    text = body.decode(page_charset(body, content_type), errors="replace")
    if media_type(content_type) != "text/html":
        return text.strip(), []
    tree = HTMLTree.parse(text)
    page = html_to_text(tree).strip(), page_links(tree, url, strip_params, text)
    # Dask's profiler may hold this frame after return; a tree freed from its thread logs an error.
    del tree
    return page


class BodiesUnreadable(Exception):
    """A worker cannot read the crawl journal's bodies file as the crawler wrote it (it runs on
    another host): the crawler then sends the bodies themselves."""


JournalBody = tuple[int, int, str]
Page = tuple[bytes | JournalBody, str | None, str]


def journal_bodies(path: str, pages: list[Page]) -> list[Page]:
    """`pages` with each (offset, length, SHA-256) body read from the journal's bodies file at `path`."""
    read = []
    try:
        with open(path, "rb") as bodies:
            for body, content_type, url in pages:
                if isinstance(body, tuple):
                    offset, length, sha256 = body
                    bodies.seek(offset)
                    body = bodies.read(length)
                    if hashlib.sha256(body).hexdigest() != sha256:
                        raise BodiesUnreadable(f"{path} at {offset} does not hold the body of {url}")
                read.append((body, content_type, url))
    except OSError as error:
        raise BodiesUnreadable(f"{path}: {error}") from None
    return read


def extract_batch(pages: list[Page], strip_params: tuple[str, ...],
                  bodies: str | None = None) -> list[tuple[str, list[str], float]]:
    """(text, links, seconds) of each (body, content type, URL): one Dask task for many pages, as one
    task per page cost the crawl's driver more than the extraction itself (issue 21). With `bodies`,
    the journal's bodies file, a body may be its place there: a worker on the crawler's host reads
    it from the disk, so the bodies do not pass through the crawler and the scheduler."""
    results = []
    for body, content_type, url in journal_bodies(bodies, pages) if bodies else pages:
        start = time.perf_counter()
        text, links = extract_page(body, content_type, url, strip_params)
        results.append((text, links, time.perf_counter() - start))
    return results
