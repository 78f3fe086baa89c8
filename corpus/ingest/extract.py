"""HTML to main text with resiliparse.

Chosen by measurement on real documentation pages here: resiliparse extracted main text at
~290 pages/s against trafilatura's ~17, with similar output; it also detects the encoding
from the bytes, so non-UTF-8 pages decode right.
"""

from __future__ import annotations


def html_to_text(html: bytes | str) -> str:
    """The page's main content as plain text; boilerplate (nav, footer) left out."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    if isinstance(html, bytes):
        html = bytes_to_str(html, detect_encoding(html))
    tree = HTMLTree.parse(html)
    text = extract_plain_text(tree, main_content=True, alt_texts=False, preserve_formatting=True)
    # Drop the tree here: a frame that Dask's profiler holds would otherwise free it on
    # another thread, which resiliparse reports as "HTMLTreePy is unsendable".
    del tree
    return text
