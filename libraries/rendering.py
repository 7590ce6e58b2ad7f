"""Local info Markdown to safe HTML.

Local info is written by library staff and read beside chats by staff of other
libraries, so it is rendered as untrusted input: raw HTML in the source is shown
as text, not interpreted, and the output is sanitised against a short allow-list
as a second line of defence.
"""

import re

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown.treeprocessors import Treeprocessor

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "strong",
        "em",
        "ul",
        "ol",
        "li",
        "a",
        "code",
        "pre",
        "blockquote",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "hr",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
LINK_REL = "noopener noreferrer"
TOP_HEADING = 3  # the card sits under the page's own h1 and h2


class _DemoteHeadings(Treeprocessor):
    """Make "# Title" and "## Title" h3 rather than lose them to the allow-list."""

    def run(self, root):
        for element in root.iter():
            if re.fullmatch(r"h[12]", element.tag):
                element.tag = f"h{TOP_HEADING}"


def render_markdown(text: str) -> SafeString:
    """Render staff-written Markdown ("extra", without raw HTML) to safe HTML."""
    md = markdown.Markdown(extensions=["extra"], output_format="html")
    # Raw HTML blocks and inline tags stay text (escaped) instead of markup;
    # md_in_html (part of "extra") registers its own "html_block", which is the
    # one removed here because extensions load first.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    md.treeprocessors.register(_DemoteHeadings(md), "refdesk_demote_headings", 0)
    html = md.convert(text or "")
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )
    return mark_safe(cleaned)  # sanitised by nh3 just above
