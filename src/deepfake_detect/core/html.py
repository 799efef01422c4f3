"""The one shell of the package's self-contained HTML pages (run report, error gallery, scan report).

A page is one file: style inline, images embedded as base64 ``data:`` URIs, no scripts, nothing fetched from a
network. Text from outside (paths, run names, config values) goes through :func:`escape`.
"""

from __future__ import annotations

import base64
import html as _html
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = ["BASE_STYLE", "cell", "data_uri", "escape", "img", "page", "page_parts", "table"]

#: The look of the report pages: readable width, plain tables. The scan report brings its own (cards).
BASE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
nav a { margin-right: 1em; } img { max-width: 100%; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } code { font-size: 0.85em; word-break: break-all; }
.meta { color: #555; }
"""


def escape(value: Any, quote: bool = True) -> str:
    """``value`` as HTML text: ``str()`` of it with ``& < >`` (and quotes, by default) escaped.

    Examples
    --------
    >>> escape("<b>R&D</b>"), escape(3)
    ('&lt;b&gt;R&amp;D&lt;/b&gt;', '3')
    """
    return _html.escape(str(value), quote=quote)


def data_uri(png: bytes, mime: str = "image/png") -> str:
    """A ``data:`` URI of image bytes (PNG unless ``mime`` says otherwise), to embed an image in the page itself.

    Examples
    --------
    >>> data_uri(b"PNG")
    'data:image/png;base64,UE5H'
    >>> data_uri(b"JPG", "image/jpeg")
    'data:image/jpeg;base64,SlBH'
    """
    return f"data:{mime};base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, *, cls: str | None = None) -> str:
    """An ``<img>`` of embedded PNG bytes.

    Examples
    --------
    >>> img(b"PNG", "a <plot>", cls="thumb")
    '<img class="thumb" src="data:image/png;base64,UE5H" alt="a &lt;plot&gt;">'
    """
    attribute = f'class="{escape(cls)}" ' if cls else ""
    return f'<img {attribute}src="{data_uri(png)}" alt="{escape(alt)}">'


def cell(value: Any) -> str:
    """A table cell's HTML: floats with four decimals, dicts and lists as JSON code, None empty.

    Examples
    --------
    >>> cell(0.123456), cell({"a": 1}), cell(None), cell("a<b")
    ('0.1235', '<code>{&quot;a&quot;: 1}</code>', '', 'a&lt;b')
    """
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return f"<code>{escape(json.dumps(value))}</code>"
    return escape("" if value is None else value)


def table(
    header: Sequence[Any], rows: Iterable[Sequence[Any]], *, row_classes: Sequence[str] | None = None
) -> str:
    """A ``<table>`` with a header row; each value goes through :func:`cell`.

    Parameters
    ----------
    header : sequence
        Column names.
    rows : iterable of sequences
        One sequence of values per row.
    row_classes : sequence of str, optional
        A CSS class for each row (empty for none).

    Returns
    -------
    str

    Examples
    --------
    >>> table(["name", "p"], [["a", 0.5]])
    '<table><thead><tr><th>name</th><th>p</th></tr></thead><tbody><tr><td>a</td><td>0.5000</td></tr></tbody></table>'
    """
    rows = list(rows)
    classes = list(row_classes) if row_classes is not None else [""] * len(rows)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        (f'<tr class="{escape(c)}">' if c else "<tr>") + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row, c in zip(rows, classes, strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page_parts(
    title: str, body: Iterable[str], *, style: str = BASE_STYLE, heading: str | None = None
) -> Iterator[str]:
    """The page piece by piece (head, each body part, end), for writing a long page without holding it all.

    Parameters
    ----------
    title : str
        The document title (plain text; escaped here).
    body : iterable of str
        HTML parts of the body, after the ``<h1>``; consumed lazily.
    style : str
        The inline style sheet.
    heading : str, optional
        The ``<h1>`` text (plain text); the title by default.

    Yields
    ------
    str
        Lines of the page, each ending in a newline.
    """
    yield (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{escape(title)}</title><style>{style}</style></head><body>\n"
    )
    yield f"<h1>{escape(title if heading is None else heading)}</h1>\n"
    for part in body:
        yield part + "\n"
    yield "</body></html>\n"


def page(
    title: str, body: Iterable[str] | str, *, style: str = BASE_STYLE, heading: str | None = None
) -> str:
    """A complete self-contained HTML page.

    Parameters
    ----------
    title : str
        The document title and, unless ``heading`` is given, the ``<h1>`` (plain text; escaped here).
    body : str or iterable of str
        The body's HTML after the ``<h1>`` (already escaped where needed).
    style : str
        The inline style sheet; :data:`BASE_STYLE` by default.
    heading : str, optional
        A ``<h1>`` other than the title.

    Returns
    -------
    str

    Examples
    --------
    >>> text = page("R&D", "<p>hi</p>", style="")
    >>> "<title>R&amp;D</title>" in text and "<h1>R&amp;D</h1>" in text and text.endswith("</html>\\n")
    True
    """
    parts = [body] if isinstance(body, str) else body
    return "".join(page_parts(title, parts, style=style, heading=heading))
