"""Local info Markdown renders to safe HTML: raw HTML and script URLs never survive."""

from html.parser import HTMLParser

import pytest
from django.utils.safestring import SafeString

from libraries.rendering import ALLOWED_TAGS, render_markdown


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def assert_only_safe_markup(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, f"{tag} is not allowed in {html!r}"
        if tag == "a":
            assert set(attrs) <= {"href", "title", "rel"}, html
            href = attrs.get("href") or ""
            assert not href.lower().startswith(("javascript:", "data:", "vbscript:"))
        else:
            assert attrs == {}, html


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("<script>alert(1)</script>", id="script-block"),
        pytest.param("Before <script>alert(1)</script> after", id="script-inline"),
        pytest.param("[click](javascript:alert(1))", id="javascript-link"),
        pytest.param("[click](JaVaScRiPt:alert(1))", id="javascript-link-mixed-case"),
        pytest.param('<a href="javascript:alert(1)">click</a>', id="raw-javascript-a"),
        pytest.param('<p onclick="alert(1)">hi</p>', id="onclick-attribute"),
        pytest.param('<img src=x onerror="alert(1)">', id="img-onerror"),
        pytest.param("Text <img src=x onerror=alert(1)> more", id="inline-img"),
        pytest.param('<iframe src="https://evil.example"></iframe>', id="iframe"),
        pytest.param("[d](data:text/html;base64,PHNjcmlwdD4=)", id="data-link"),
        pytest.param("![pixel](data:image/png;base64,iVBORw0KGgo=)", id="data-image"),
        pytest.param('[x](https://ok.example){: onclick="alert(1)" }', id="attr-list"),
        pytest.param('<div markdown="1">*x*</div>', id="md-in-html"),
        pytest.param("<style>body{display:none}</style>", id="style"),
        pytest.param("<!-- <script>alert(1)</script> -->", id="comment"),
    ],
)
def test_hostile_input_leaves_no_active_markup(source):
    html = render_markdown(source)

    assert_only_safe_markup(html)
    tags = {tag for tag, _ in elements(html)}
    assert not tags & {"script", "img", "iframe", "style", "div"}


def test_raw_html_is_shown_as_text_not_interpreted():
    html = render_markdown("Use <b>bold</b> and <script>alert(1)</script>")

    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;script&gt;" in html
    assert "<b>" not in html
    assert "<script" not in html


def test_onerror_is_never_an_attribute():
    html = render_markdown('<img src=x onerror="alert(1)">\n\n![a](x.png "t")')

    assert all("onerror" not in attrs for _, attrs in elements(html))
    assert "<img" not in html


def test_javascript_link_keeps_its_text_but_loses_the_target():
    html = render_markdown("[renew online](javascript:alert(document.cookie))")

    assert ">renew online</a>" in html
    assert "href" not in html
    assert "javascript" not in html


def test_ordinary_markdown_survives():
    source = (
        "## Cards for non-residents\n\n"
        "Anyone **living or working** in the county gets a *free* card.\n\n"
        "* bring photo ID\n"
        "* proof of address\n\n"
        "Then:\n\n"
        "1. fill in the form\n"
        "2. wait a day\n\n"
        '[Apply online](https://www.springfieldlibrary.example/cards "Cards"), '
        "mail <reference@springfield.example> or call [us](tel:+15555550100).\n\n"
        "> Fines are waived for children.\n\n"
        "| Item | Loan |\n|---|---|\n| Book | 3 weeks |\n\n"
        "`ILL-FORM`\n\n---\n"
    )

    html = render_markdown(source)

    assert isinstance(html, SafeString)
    assert_only_safe_markup(html)
    assert "<h3>Cards for non-residents</h3>" in html
    assert "<strong>living or working</strong>" in html
    assert "<em>free</em>" in html
    assert "<ul>\n<li>bring photo ID</li>" in html
    assert "<ol>\n<li>fill in the form</li>" in html
    assert (
        '<a href="https://www.springfieldlibrary.example/cards" title="Cards" '
        'rel="noopener noreferrer">Apply online</a>'
    ) in html
    assert 'href="mailto:reference@springfield.example"' in html
    assert 'href="tel:+15555550100"' in html
    assert "<blockquote>" in html
    assert "<td>3 weeks</td>" in html
    assert "<code>ILL-FORM</code>" in html
    assert "<hr>" in html


def test_every_link_gets_noopener_noreferrer():
    html = render_markdown("[a](https://a.example) and <https://b.example>")

    links = [attrs for tag, attrs in elements(html) if tag == "a"]
    assert len(links) == 2
    assert all(attrs["rel"] == "noopener noreferrer" for attrs in links)


def test_top_level_headings_become_h3():
    html = render_markdown("# Borrowing\n\n#### Renewals")

    assert "<h3>Borrowing</h3>" in html
    assert "<h4>Renewals</h4>" in html
    assert "<h1>" not in html


def test_empty_text_renders_empty():
    assert render_markdown("") == ""
