"""The crawl's pure helpers: URL rules, robots.txt, retry timing, charsets."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import urlsplit

import pytest
from resiliparse.parse.html import HTMLTree

from tokenmill.corpus.crawl.fetch import retry_after_seconds, retry_delay, retryable
from tokenmill.corpus.crawl.page import extract_page, page_charset, page_links, resolved_link
from tokenmill.corpus.crawl.robots import parse_robots
from tokenmill.corpus.crawl.urls import Scope, host_of, is_public_address, normalize_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM:80/a?b=1#frag", "http://example.com/a?b=1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://example.com/p?utm_source=x&id=3&gclid=9", "http://example.com/p?id=3"),
        ("mailto:someone@example.com", None),
        ("ftp://example.com/file", None),
        ("javascript:void(0)", None),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_normalize_url(raw: str, expected: str | None) -> None:
    assert normalize_url(raw, ["utm_source", "gclid"]) == expected


def test_normalize_url_resolves_relative_links() -> None:
    assert normalize_url("../c.html#top", base="http://h.org/a/b/page.html") == "http://h.org/a/c.html"


def test_scope_domains_and_patterns() -> None:
    scope = Scope.build(["example.com"], include=[r"/docs/"], exclude=[r"\.zip$"])
    assert scope.allows("http://example.com/docs/a")
    assert scope.allows("http://www.example.com/docs/a")
    assert not scope.allows("http://badexample.com/docs/a")
    assert not scope.allows("http://example.com/blog/a")
    assert not scope.allows("http://example.com/docs/a.zip")


def test_host_and_scope_read_the_netloc_as_urlsplit_reads_it() -> None:
    """`host_of` skips urllib for URLs spelled as `normalize_url` spells them: random URLs, normal or
    not (case, userinfo, ports, brackets, whitespace, no path), give urlsplit's netloc, and the scope
    judges their hosts as urlsplit's `hostname` would."""
    rng = random.Random(3)
    pieces = ["http://", "https://", "HTTP://", " ", "\t", "a.org", "B.Org", "sub.a.org", "u:p@", "@", ":8080",
              ":", "[::1]", "/", "/p", "?q=1", "#f", "x", ".", "%20"]
    scope = Scope.build(["a.org", "::1"], include=[], exclude=[])
    for _ in range(5000):
        url = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 7)))
        try:
            expected = urlsplit(url)
            hostname = expected.hostname
        except ValueError:
            continue
        assert host_of(url) == expected.netloc, url
        host = (hostname or "").lower()
        assert scope.allows(url) == any(host == d or host.endswith("." + d) for d in ("a.org", "::1")), url


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("100.64.0.1", False),  # shared address space (RFC 6598), not on the public internet
        ("100.100.100.200", False),  # a cloud metadata service in it
        ("2002:7f00:1::", False),  # 6to4 carrying 127.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 carrying 127.0.0.1
        ("93.184.216.34", True),
        ("::ffff:93.184.216.34", True),
        ("2002:5db8:d822::", True),  # 6to4 carrying 93.184.216.34
        ("2606:4700::1", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_robots_rules_and_crawl_delay() -> None:
    robots = parse_robots(200, b"User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n", "tokenmill-crawler/1.0")
    assert robots.allows("http://h/public/a")
    assert not robots.allows("http://h/private/a")
    assert robots.crawl_delay() == 2.0


def test_robots_wildcards_end_anchor_and_longest_match() -> None:
    """RFC 9309 §2.2.2-2.2.3: `*` matches any run, `$` ends the path, and the longest match wins
    (an Allow longer than a Disallow before it)."""
    body = b"User-agent: *\nDisallow: /*.pdf$\nDisallow: /private*/\nDisallow: /shop\nAllow: /shop/public\n"
    robots = parse_robots(200, body, "tokenmill-crawler/1.0")
    assert not robots.allows("http://h/docs/a.pdf")
    assert robots.allows("http://h/docs/a.pdf.html")
    assert not robots.allows("http://h/private-notes/a")
    assert robots.allows("http://h/privately")
    assert not robots.allows("http://h/shop/cart")
    assert robots.allows("http://h/shop/public/item")


def test_robots_status_rules() -> None:
    """RFC 9309: a missing robots.txt allows everything; a server error allows nothing."""
    assert parse_robots(404, b"", "ua").allows("http://h/x")
    assert not parse_robots(503, b"", "ua").allows("http://h/x")
    assert not parse_robots(None, b"", "ua").allows("http://h/x")
    assert parse_robots(302, b"", "ua").allows("http://h/x")  # more redirects than followed: unavailable


def test_retry_after_and_backoff() -> None:
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert retry_after_seconds("7", now.timestamp()) == 7.0
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(later, now.timestamp()) == pytest.approx(30.0)
    assert retry_after_seconds("soon", now.timestamp()) is None
    rng = random.Random(0)
    assert retry_delay(0, 3.0, 1.0, 30.0, rng) == 3.0
    delays = [retry_delay(attempt, None, 1.0, 5.0, rng) for attempt in range(5)]
    for attempt, delay in enumerate(delays):
        ceiling = min(5.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert retryable(429, "crawl:status_429") and retryable(503, "crawl:status_503")
    assert not retryable(404, "crawl:status_404")


def test_charset_from_header_meta_and_detector() -> None:
    latin = '<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9</p></body></html>'.encode("latin-1")
    assert page_charset(latin, "text/html") == "iso8859-1"
    assert page_charset("привет".encode("cp1251"), "text/plain; charset=windows-1251") == "cp1251"
    assert page_charset("plain ascii and é".encode(), "text/plain") == "utf-8"


def test_extract_page_text_and_links() -> None:
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251"></head><body>'
        "<article><h1>Заголовок</h1><p>Привет, мир. Это длинный абзац текста для проверки.</p></article>"
        '<a href="/next.html">next</a><a href="rel.html#x">rel</a><a href="rel.html?utm_source=x">again</a>'
        '<a href="mailto:a@h.org">mail</a></body></html>'
    ).encode("cp1251")
    text, links = extract_page(html, "text/html", "http://h.org/dir/page.html", ("utm_source",))
    assert "Привет, мир." in text
    assert links == ["http://h.org/next.html", "http://h.org/dir/rel.html"]  # normalized, each once


@pytest.mark.parametrize("page", ["http://h.org/dir/page.html?x=1", "http://h.org/dir/other.html", "http://h.org",
                                  "http://h.org/a/b/c;p?q=2"])
def test_links_resolved_through_the_folder_cache_as_one_by_one(page: str) -> None:
    """Links are remembered per base folder (or per page for '', '?q' and '#f'): each resolves as
    `normalize_url` resolves it against the page itself, whichever page of the folder came first."""
    hrefs = ["rel.html", "./rel.html?utm_source=x&b=2", "../up.html", "/abs.html", "//other.org/x", "",
             "?q=1", "#frag", " spaced.html ", "https://h.org:443/p", "sub/", "..", "mailto:a@h.org", "c;p",
             "rel.html#part", "?q=1#part", "sp.html #part", "/abs.html#"]
    tree = HTMLTree.parse("".join(f'<a href="{href}">x</a>' for href in hrefs))
    expected = [normalize_url(href, ["utm_source"], base=page) for href in hrefs]
    for _ in range(2):  # the second time from the cache
        assert page_links(tree, page, ("utm_source",)) == list(dict.fromkeys(e for e in expected if e))


def test_a_link_resolves_as_normalize_url_resolves_it_fast_path_or_not() -> None:
    """`resolved_link` skips urllib for plain paths from a normalized folder: random hrefs of path
    characters, dot segments and '//' resolve exactly as `normalize_url` resolves them."""
    rng = random.Random(7)
    bases = ["http://h.org/a/", "http://h.org/", "https://H.org:443/a/b/", "http://h.org/a/../b/", "http://h.org:8080/x/",
             "http://h.org/a/b.html", "http://h.org/a/?q=1"]
    pieces = ["a", "b.html", "/", ".", "..", "-", "_", "~", "//", "x.y", "%20", "?q", ":"]
    for _ in range(5000):
        href = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        base = rng.choice(bases)
        assert resolved_link.__wrapped__(href, (), base) == normalize_url(href, (), base=base), (href, base)


@pytest.mark.parametrize("head", ["", '<BASE href="http://other.org/docs/">', '<base target="_top">',
                                  "<title>about &lt;base&gt;</title>"])
def test_a_base_element_is_looked_for_only_where_the_html_names_one(head: str) -> None:
    html = f'<html><head>{head}</head><body><a href="x.html">x</a><a href="/y.html">y</a></body></html>'
    tree = HTMLTree.parse(html)
    assert page_links(tree, "http://h.org/a/b.html", (), html) == page_links(tree, "http://h.org/a/b.html")
    assert page_links(tree, "http://h.org/a/b.html", (), html)[0] == (
        "http://other.org/docs/x.html" if "BASE href" in head else "http://h.org/a/x.html")


def test_a_pages_links_cost_the_same_each_however_many_it_has() -> None:
    """Iterating resiliparse's node collection costs O(n) per element: a reference page of 400 links
    took 0.4 s, so a crawl slowed the further it got into link-heavy pages (issue 21)."""

    def seconds_per_link(links: int) -> float:
        tree = HTMLTree.parse("".join(f'<li><a href="/p/{i}.html">page {i}</a></li>' for i in range(links)))
        page_links(tree, "http://h.org/p/index.html")  # the cache filled, as in a crawl of the site
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            page_links(tree, "http://h.org/p/index.html")
            runs.append(time.perf_counter() - start)
        return min(runs) / links

    assert seconds_per_link(8_000) < 3 * seconds_per_link(1_000)  # were it O(n^2): 8 times as much a link


def test_seeds_file_is_read_from_any_fsspec_url(tmp_path) -> None:
    from tokenmill.corpus.crawl.step import CrawlParams, crawl_seeds
    from tokenmill.corpus.store.errors import InputError

    (tmp_path / "seeds.txt").write_text("# crawl these\nhttps://Example.org/docs\n\nhttps://example.net/\n")
    params = CrawlParams(seeds=["https://example.com/"], seeds_file=f"file://{tmp_path}/seeds.txt")
    assert sorted(crawl_seeds(params)) == ["https://example.com/", "https://example.net/", "https://example.org/docs"]
    with pytest.raises(InputError, match="does not exist"):
        crawl_seeds(CrawlParams(seeds_file=str(tmp_path / "missing.txt")))
