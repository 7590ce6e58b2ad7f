"""`python manage.py ingest_email < message.eml`: one raw message from a mail
server's pipe, stored and filed (PROTOCOL.md).

Exits 0 once the raw bytes are stored, even when filing needs attention
(the message waits in admin); non-zero only when it could not be stored, so
the mail server keeps it and tries again.
"""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tickets import services


class Command(BaseCommand):
    help = "Read one raw RFC 822 message from standard input and file it as a ticket."

    def handle(self, *args, **options) -> None:
        limit = settings.REFDESK_INBOUND_MAX_BYTES
        raw = sys.stdin.buffer.read(limit + 1)
        if not raw:
            raise CommandError("no message on standard input")
        if len(raw) > limit:
            raise CommandError(f"the message is over {limit} bytes")
        try:
            inbound = services.file_inbound_email(raw)
        except Exception as error:  # not even stored: let the mail server retry
            raise CommandError(f"could not store the message: {error}") from error
        ticket = inbound.ticket.reference if inbound.ticket_id else "-"
        self.stdout.write(f"inbound {inbound.pk}: {inbound.status} {ticket}")
