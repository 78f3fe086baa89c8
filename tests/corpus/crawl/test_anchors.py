"""Links read from the markup (`anchors`) are the tree's links, or the scan gives way to the tree."""

from __future__ import annotations

import random
import time

import pytest
from resiliparse.parse.html import HTMLTree

from tokenmill.corpus.crawl.anchors import scanned_hrefs
from tokenmill.corpus.crawl.page import page_links


def tree_hrefs(html: str) -> list[str]:
    tree = HTMLTree.parse(html)
    return [a.getattr("href") or "" for a in tree.document.query_selector_all("a[href]").values()]


def scan(html: str) -> list[str] | None:
    return scanned_hrefs(HTMLTree.parse(html).document.html, len(tree_hrefs(html)))


@pytest.mark.parametrize("html", [
    '<a href="1">x</a><a href=\'2\'>y</a><a href=3>z</a><a class="c" href="4" title="t">w</a>',
    '<a title="a > b" href="1">x</a><a data-x=\'"\' href = "2">y</a><A HREF="3">z</A><a\nhref\n=\n"4">',
    '<a href="1" href="2">first wins</a><a =href="x" href="3"><a href>empty</a><a/href="4">',
    '<a href="?a=1&copy=2&amp;b&ampx&amp=&#128;&#1;&#0;&lt;x&#x26;&notit;&not;&#xD800;&#99999999;">',
    '<a href="a\r\nb\rc\0d">cr and nul</a>',
    '<!-- <a href="no"> --><a href="1"><!--><a href="2"><!---><a href="3"><!-- x --!><a href="4">',
    '<script>var s = "<a href=no>";</script><style>a[href="<a href=no>"]{}</style><a href="1">',
    '<title><a href="no"></title><textarea><a href="no"></textarea><a href="1"><TEMPLATE><a href="no"></template>',
    '<iframe><a href="no"></iframe><xmp><a href="no"></xmp><noscript><a href="1"></noscript>',
    '<abbr href="no"></abbr><area href="no"><a name="x">no href</a><a href="1"><plaintext><a href="no">',
    '<svg><a href="1"><text>x</text></a></svg><math><a href="2"></math><a href="3"',
    "<p><a href=x>left open across paragraphs<p>two",  # the tree clones the anchor
    '<frameset><a href="1"></frameset>',  # the tree drops it
    '<svg><![CDATA[<a href="1">]]></svg><a href="2">',
    '<div title="<a href=1>">an anchor in an attribute</div><table><a href="2">moved before the table</table>',
])
def test_scanned_hrefs_are_the_trees(html: str) -> None:
    assert scan(html) == tree_hrefs(html)


def test_where_the_scan_and_the_tree_differ_the_scan_gives_way() -> None:
    """An SVG link's `xlink:href` is `href` to the tree but not to the scan: the tree's nodes answer."""
    html = '<a href="/1.html">x</a><svg><a xlink:href="/2.html"><text>y</text></a></svg>'
    tree = HTMLTree.parse(html)
    assert scan(html) is None
    assert page_links(tree, "http://h.org/", (), html) == ["http://h.org/1.html", "http://h.org/2.html"]


PIECES = [
    '<a href="{u}">', "<a href={u}>", "<a href='{u}' class=x>", '<a class="k" href="{u}" >', "<A HREF={u}>",
    '<a title="x>y" href="{u}">', "</a>", "<p>", "</p>", "<div>", "</div>", "<table><tr><td>", "</td></tr></table>",
    "<!-- ", " -->", "<script>", "</script>", "<style>", "</style>", "<svg>", "</svg>", "<template>",
    "</template>", "<textarea>", "</textarea>", "<a name=n>", "<b>", "</b>", "<select>", "</select>", "<li>",
    "text ", "&amp;", "&copy", "<", ">", '"', "'", "<br/>", "<img alt='<a href=q>'>", "<a href=", "<title>",
    "</title>", "<form>", "</form>", "<button>", "<h2>", "</h2>", "<frameset>", "<noscript>", "\r\n", "\0",
]
URLS = ["/p/1.html", "rel.html#f", "?q=1&amp;r=2", "http://o.org/x", "", "a b", "&lt;x", "#top", "&#38;x"]


def test_random_markup_scans_as_the_tree_reads_it_or_gives_way() -> None:
    """Random documents from tricky pieces: wherever the scan answers, it answers what the tree
    holds, in the tree's order, and it answers for nearly all."""
    rng = random.Random(21)
    answered = 0
    for _ in range(3000):
        html = "".join(rng.choice(PIECES).format(u=rng.choice(URLS)) for _ in range(rng.randint(1, 25)))
        scanned = scan(html)
        if scanned is not None:
            answered += 1
            assert scanned == tree_hrefs(html), html
    assert answered > 2900


def test_a_tag_of_many_attributes_costs_no_more_than_its_length() -> None:
    html = "<a " + " ".join(f"attribute{i}=value{i}" for i in range(5_000)) + ">x</a>"
    serialized = HTMLTree.parse(html).document.html
    start = time.perf_counter()
    assert scanned_hrefs(serialized, 0) == []
    assert time.perf_counter() - start < 0.5
