"""Text of an email body: HTML turned into text, and the new part of a reply
told apart from quoted history and signatures. Pure: the standard library only.

- `html_to_text`: paragraphs become blank-line separated, `<br>` a line break,
  `<li>` a "- " line; blockquotes and the quote containers of Gmail, Yahoo,
  Proton Mail and Outlook on the web become `>` lines.
- `visible_text`: cut at the first quoted-history marker (Gmail/Apple
  Mail/Thunderbird "On … wrote:" in several languages, also when wrapped onto
  two lines; Outlook's "-----Original Message-----" and "From: … Sent: …"
  header blocks, with the rule line above them), at the "-- " signature, or
  at a mobile signature with only quotes after it; then drop remaining `>`
  lines. When nothing would be left, the whole text is kept.
"""

import html
import re
from html.parser import HTMLParser


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# HTML to text
# ----------------------------------------------------------------------
_PARAGRAPH_TAGS = {
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "ol",
    "p",
    "pre",
    "table",
    "ul",
}
_LINE_TAGS = {
    "address",
    "article",
    "dd",
    "div",
    "dl",
    "dt",
    "footer",
    "header",
    "li",
    "section",
    "tr",
}
_SKIP_TAGS = {"head", "script", "style", "title", "template"}
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "protonmail_quote")
_QUOTE_IDS = (
    "divrplyfwdmsg",
    "appendonsend",
    "mail-editor-reference-message-container",
)


class _HtmlText(HTMLParser):
    """Collect text by lines, each line with the quote depth it started at.

    Paragraph-like elements are separated by a blank line, other blocks by a
    line break, and `<br>` breaks the line even when it is empty.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self.current: list[str] = []
        self.depth = 0
        self.quote_stack: list[bool] = []
        self.skipping = 0
        self.pre = 0
        self.line_depth = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
            return
        if tag in ("br", "hr"):
            self.handle_startendtag(tag, attrs)
            return
        self._block(tag)
        if tag == "pre":
            self.pre += 1
        if tag in ("blockquote", "div"):
            quoting = tag == "blockquote" or _is_quote_container(
                {k: (v or "") for k, v in attrs}
            )
            self.quote_stack.append(quoting)
            if quoting:
                self._flush(blank=True)
                self.depth += 1
        if tag == "li":
            self.current.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
            return
        if tag in ("blockquote", "div") and self.quote_stack and self.quote_stack.pop():
            self._flush(blank=False)
            self.depth = max(0, self.depth - 1)
            self._flush(blank=True)
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        self._block(tag)

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag == "br":
            self._flush(blank=False, force=True)
        elif tag == "hr":
            self._flush(blank=True)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not self.current:
            self.line_depth = self.depth
        if self.pre:
            parts = data.split("\n")
            self.current.append(parts[0])
            for rest in parts[1:]:
                self._flush(blank=False, force=True)
                self.line_depth = self.depth
                self.current.append(rest)
            return
        text = re.sub(r"\s+", " ", data)
        if not "".join(self.current).strip():
            text = text.lstrip()
        if text:
            self.current.append(text)

    def _block(self, tag: str) -> None:
        if tag in _PARAGRAPH_TAGS:
            self._flush(blank=True)
        elif tag in _LINE_TAGS:
            self._flush(blank=False)

    def _flush(self, *, blank: bool, force: bool = False) -> None:
        line = "".join(self.current).rstrip()
        if line.strip() in ("", "-") and not force:
            line = ""
        if line or force:
            self.lines.append((self.line_depth, line))
        if blank and self.lines and self.lines[-1][1]:
            self.lines.append((0, ""))
        self.current = []
        self.line_depth = self.depth

    def text(self) -> str:
        self._flush(blank=False)
        out = []
        for depth, line in self.lines:
            prefix = "> " * depth if depth and line else ""
            out.append(f"{prefix}{line}".rstrip())
        joined = "\n".join(out)
        return re.sub(r"\n{3,}", "\n\n", joined).strip("\n")


def _is_quote_container(attributes: dict[str, str]) -> bool:
    classes = attributes.get("class", "").lower()
    ident = attributes.get("id", "").lower()
    return any(c in classes for c in _QUOTE_CLASSES) or ident in _QUOTE_IDS


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body; quoted blocks become `>` lines."""
    parser = _HtmlText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # a broken document still gives its text
        return html.unescape(re.sub(r"<[^>]*>", " ", markup)).strip()
    return parser.text()


# Quoted history and signatures
# ----------------------------------------------------------------------
_ATTRIBUTION_RE = re.compile(
    r"^\s*(on|le|am|el|il|em|op|den|dne)\b.{4,}?"
    r"(wrote|a écrit|schrieb|escribió|ha scritto|scrisse|escreveu|schreef|skrev|napsal)"
    r"\s*:\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE_RE = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_LINE_RE = re.compile(
    r"^\s*\**\s*(from|von|de|da|van)\s*:\**\s+\S", re.IGNORECASE
)
_SENT_LINE_RE = re.compile(
    r"^\s*\**\s*(sent|date|gesendet|datum|envoyé|enviado|inviato|verzonden)\s*:\**\s",
    re.IGNORECASE,
)
_RULE_RE = re.compile(r"^\s*_{10,}\s*$")
_MOBILE_SIGNATURE_RE = re.compile(
    r"^\s*(sent from my \w+|sent from (mail|outlook) for \w+|get outlook for \w+"
    r"|sent from yahoo mail|sent from my (iphone|ipad|android|phone|mobile)"
    r"|envoyé de mon \w+|von meinem \w+ gesendet)",
    re.IGNORECASE,
)


def visible_text(text: str) -> str:
    """The new text of a reply: quoted history and signatures cut, `>` lines dropped."""
    lines = normalise_newlines(text).split("\n")
    cut = _quote_start(lines)
    kept = [line for line in lines[:cut] if not line.lstrip().startswith(">")]
    kept = _drop_trailing_attribution(kept)
    visible = "\n".join(line.rstrip() for line in kept).strip()
    visible = re.sub(r"\n{3,}", "\n\n", visible)
    if visible:
        return visible
    return "\n".join(line.rstrip() for line in lines).strip()


def _quote_start(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if line.rstrip("\n") in ("-- ", "--"):
            return index
        if _ORIGINAL_MESSAGE_RE.match(stripped):
            return index
        if _is_attribution(lines, index):
            return index
        if _is_header_block(lines, index):
            start = index
            if start > 0 and _RULE_RE.match(lines[start - 1]):
                start -= 1
            return start
        if _MOBILE_SIGNATURE_RE.match(stripped) and _only_quotes_after(
            lines, index + 1
        ):
            return index
    return len(lines)


def _is_attribution(lines: list[str], index: int) -> bool:
    line = lines[index].strip()
    candidate = line
    if not _ATTRIBUTION_RE.match(candidate) and index + 1 < len(lines):
        # Gmail wraps long attributions onto a second line.
        candidate = f"{line} {lines[index + 1].strip()}"
        if not re.match(r"^\s*(on|le|am|el)\b", line, re.IGNORECASE):
            return False
        if not _ATTRIBUTION_RE.match(candidate):
            return False
    elif not _ATTRIBUTION_RE.match(candidate):
        return False
    # Not a patron's own sentence: an address, a time or quoted lines follow.
    if "@" in candidate or re.search(r"\d", candidate):
        return True
    return _next_nonblank(lines, index + 1).startswith(">")


def _is_header_block(lines: list[str], index: int) -> bool:
    if not _HEADER_LINE_RE.match(lines[index]):
        return False
    following = lines[index + 1 : index + 5]
    return any(_SENT_LINE_RE.match(line) for line in following)


def _next_nonblank(lines: list[str], start: int) -> str:
    for line in lines[start:]:
        if line.strip():
            return line.lstrip()
    return ""


def _only_quotes_after(lines: list[str], start: int) -> bool:
    return all(
        not line.strip() or line.lstrip().startswith(">") for line in lines[start:]
    )


def _drop_trailing_attribution(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if lines and _ATTRIBUTION_RE.match(lines[-1].strip()):
        lines = lines[:-1]
    return lines
