"""The ticket queue and ticket pages, their CSRF-protected form actions, and
ticket admin scoped to a library admin's library."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from libraries.models import Role
from tests.conftest import PASSWORD
from tests.tickets.conftest import eml
from tickets import services
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def signed_in(librarian, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(librarian.user)
    return client


def csrf_token(client: Client, path: str) -> str:
    page = client.get(path).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_the_queue_needs_a_signed_in_librarian(springfield, client):
    response = client.get("/desk/tickets/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    visitor = get_user_model().objects.create_user("visitor", password=PASSWORD)
    client.force_login(visitor)
    assert client.get("/desk/tickets/").status_code == 403


def test_the_queue_lists_my_librarys_tickets_with_their_sla(
    springfield, shelbyville, marge, ask
):
    own = ask(springfield, question="Where are the atlases?")
    overdue = ask(springfield, question="Late one")
    Ticket.objects.filter(pk=overdue.pk).update(
        due_by=timezone.now() - timedelta(hours=2)
    )
    other = ask(shelbyville, question="Shelbyville only")

    page = signed_in(marge).get("/desk/tickets/")

    html = page.content.decode()
    assert page.status_code == 200
    assert own.reference in html
    assert overdue.reference in html
    assert other.reference not in html
    assert "Overdue" in html
    assert "On track" in html
    assert 'aria-current="page">My library' in html
    risky = ask(springfield, question="Risky one")
    Ticket.objects.filter(pk=risky.pk).update(risk_at=timezone.now() - timedelta(1))
    at_risk_view = signed_in(marge).get("/desk/tickets/?view=at_risk").content.decode()
    assert risky.reference in at_risk_view
    assert overdue.reference not in at_risk_view  # overdue has its own view
    overdue_view = signed_in(marge).get("/desk/tickets/?view=overdue").content.decode()
    assert overdue.reference in overdue_view
    assert own.reference not in overdue_view


def test_the_ticket_page_shows_the_thread_escaped(springfield, marge, ask):
    ticket = ask(question='<img src=x onerror="alert(1)"> Is <b>this</b> bold?')

    page = signed_in(marge).get(f"/desk/tickets/{ticket.reference}/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "<img src=x" not in html
    assert "Reply to the patron" in html
    assert 'id="due-by"' in html


def test_another_librarys_ticket_page_is_not_found(
    springfield, shelbyville, marge, ask
):
    ticket = ask(shelbyville)
    assert signed_in(marge).get(f"/desk/tickets/{ticket.reference}/").status_code == 404


def test_actions_refuse_a_post_without_the_csrf_token(springfield, marge, ask):
    ticket = ask()
    client = signed_in(marge, csrf=True)

    response = client.post(f"/desk/tickets/{ticket.reference}/claim")

    assert response.status_code == 403
    assert Ticket.objects.get(pk=ticket.pk).claimed_by is None


def test_claim_reply_note_and_close_through_the_page_forms(springfield, marge, ask):
    ticket = ask()
    client = signed_in(marge, csrf=True)
    page = f"/desk/tickets/{ticket.reference}/"

    def post(action: str, **data):
        data["csrfmiddlewaretoken"] = csrf_token(client, page)
        return client.post(f"{page}{action}", data)

    assert post("claim").status_code == 302
    assert Ticket.objects.get(pk=ticket.pk).claimed_by == marge
    assert post("reply", body="").status_code == 400  # kept on the page with an error
    assert post("reply", body="Yes, we have it.").status_code == 302
    assert post("note", body="Patron also phoned.").status_code == 302
    assert post("status", status="closed").status_code == 302

    ticket.refresh_from_db()
    assert ticket.status == "closed"
    directions = list(ticket.messages.values_list("direction", flat=True))
    assert directions == ["inbound", "outbound", "outbound", "internal", "internal"]
    html = client.get(page).content.decode()
    assert "Yes, we have it." in html
    assert "Patron also phoned." in html


def test_a_refused_action_is_reported_on_the_page(
    springfield, marge, make_librarian, ask
):
    ticket = ask()
    services.claim_ticket(reference=ticket.reference, librarian=marge)
    ned = make_librarian(springfield, display_name="Ned")

    response = signed_in(ned).post(
        f"/desk/tickets/{ticket.reference}/claim", follow=True
    )

    assert "Marge has already claimed it" in response.content.decode()


def test_attachments_download_as_files(springfield, marge):
    inbound = services.file_inbound_email(eml("attachment_new_question.eml"))
    pdf = inbound.message.attachments.get(filename="Projektübersicht.pdf")

    response = signed_in(marge).get(
        f"/desk/tickets/{inbound.ticket.reference}/attachments/{pdf.pk}"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith(
        'attachment; filename="Projektbersicht.pdf"'
    )
    assert "sandbox" in response["Content-Security-Policy"]
    assert response.content.startswith(b"%PDF")


def test_a_library_admin_sees_only_their_librarys_tickets_in_admin(
    springfield, shelbyville, make_librarian, ask
):
    own = ask(springfield)
    other = ask(shelbyville)
    boss = make_librarian(springfield, role=Role.LIBRARY_ADMIN)
    client = signed_in(boss)

    listing = client.get("/admin/tickets/ticket/")
    refs = {t.reference for t in listing.context["cl"].result_list}

    assert refs == {own.reference}
    assert client.get(f"/admin/tickets/ticket/{own.pk}/change/").status_code == 200
    assert client.get(f"/admin/tickets/ticket/{other.pk}/change/").status_code == 403
    assert client.get("/admin/tickets/ticket/?status__exact=new").status_code == 200
