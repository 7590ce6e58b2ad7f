"""Patron details are removed from FAQ drafts: names, emails, phones, card numbers."""

import pytest

from faq.scrub import scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Hi, I'm Patricia Smith and my card is 21234000567890.",
            "Hi, I'm [name] and my card is [number].",
            id="name-and-card-number",
        ),
        pytest.param(
            "Thanks Patricia! Smith is on the account.",
            "Thanks [name]! [name] is on the account.",
            id="name-parts",
        ),
        pytest.param(
            "Write to pat.smith+lib@example.org or PAT@EXAMPLE.COM",
            "Write to [email] or [email]",
            id="emails-any-case",
        ),
        pytest.param(
            "Call me at (217) 555-0143 or +1 217.555.0199 tonight",
            "Call me at [phone] or [phone] tonight",
            id="phone-numbers",
        ),
        pytest.param(
            "My card 2123 4000 5678 90 stopped working",
            "My card [number] stopped working",
            id="spaced-card-number",
        ),
        pytest.param(
            "Books are due in 21 days; the fee is $40 a year since 2024.",
            "Books are due in 21 days; the fee is $40 a year since 2024.",
            id="ordinary-numbers-stay",
        ),
        pytest.param(
            "Patrick asked about patios",
            "Patrick asked about patios",
            id="only-whole-words",
        ),
    ],
)
def test_scrub_removes_patron_details(text, expected):
    assert (
        scrub(text, names=["Patricia Smith"], emails=["pat.smith+lib@example.org"])
        == expected
    )


def test_short_name_parts_are_kept_but_the_full_name_goes():
    assert (
        scrub("Al Li asked; Al says hi", names=["Al Li"]) == "[name] asked; Al says hi"
    )


def test_nothing_given_nothing_but_patterns_removed():
    assert scrub("Ask at the desk", names=["", "  "], emails=[""]) == "Ask at the desk"
