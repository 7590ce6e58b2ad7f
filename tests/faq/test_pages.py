"""Public FAQ pages: a stable URL per library, search, escaped and sanitised."""

from faq import services
from faq.models import Answer
from tests.faq.conftest import HOSTILE_MARKDOWN, assert_harmless


def test_faq_page_lists_the_librarys_and_consortium_public_answers(client, demo_faq):
    response = client.get("/faq/springfield/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Can I get a library card if I live out of state?" in page
    assert "How do I renew my books?" in page  # consortium-wide
    assert "Is the bookmobile running?" not in page  # Shelbyville's
    assert "Patron asks for legal or medical advice" not in page  # staff only
    assert '<input id="faq-q" name="q" type="search"' in page
    assert 'href="/ask/springfield/"' in page


def test_faq_page_searches(client, demo_faq):
    expected = demo_faq("Can I get a library card if I live out of state?")

    page = client.get(
        "/faq/springfield/", {"q": "libary card out of state"}
    ).content.decode()

    assert f'href="/faq/springfield/{expected.pk}/"' in page
    assert page.index(expected.question) < page.index("Who can get a library card?")


def test_answer_page_has_a_stable_url_per_library(client, demo_faq):
    answer = demo_faq("How do I renew my books?")

    for slug in ("springfield", "ogdenville"):
        response = client.get(f"/faq/{slug}/{answer.pk}/")
        assert response.status_code == 200
        assert (
            '<h1 id="question">How do I renew my books?</h1>'
            in response.content.decode()
        )


def test_other_libraries_and_staff_only_answers_are_not_found(client, demo_faq):
    shelbyville = demo_faq("Is the bookmobile running?")
    staff_only = demo_faq("Handling an abusive or spam chat")

    assert client.get(f"/faq/springfield/{shelbyville.pk}/").status_code == 404
    assert client.get(f"/faq/shelbyville/{staff_only.pk}/").status_code == 404
    assert client.get("/faq/capital-city/").status_code == 404


def test_hostile_answers_and_queries_are_harmless_on_the_pages(client, demo_libraries):
    answer = services.save_answer(
        answer=Answer(
            question="<script>alert('q')</script> How do I stay safe online?",
            answer=HOSTILE_MARKDOWN,
            library=demo_libraries["springfield"],
            tags=["<b>safety</b>"],
            is_published=True,
        )
    )

    detail = client.get(f"/faq/springfield/{answer.pk}/").content.decode()
    listing = client.get(
        "/faq/springfield/", {"q": '"><script>alert(1)</script> safe'}
    ).content.decode()

    opening = '<div class="faq-answer">'
    start = detail.index(opening) + len(opening)
    assert_harmless(detail[start : detail.index("</div>", start)])
    assert "&lt;script&gt;alert(&#x27;q&#x27;)&lt;/script&gt;" in detail
    assert "&lt;b&gt;safety&lt;/b&gt;" in detail
    assert "<script>alert(1)</script>" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
