"""`manage.py seed_demo`: create the demo consortium (see libraries.demo)."""

import os

from django.core.management.base import BaseCommand

from libraries import demo


class Command(BaseCommand):
    help = (
        "Create the demo consortium: springfield, shelbyville and ogdenville, "
        "librarians {slug}-1 and {slug}-2, and the consortium admin `admin`, all "
        "with the password in DEMO_PASSWORD (default refdesk-demo). Creates only "
        "what is missing; running it again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--always-open",
            action="store_true",
            help="Open every demo library around the clock, for a demo at any hour.",
        )

    def handle(self, *args, always_open: bool, **options):
        password = os.environ.get("DEMO_PASSWORD") or demo.DEFAULT_PASSWORD
        for line in demo.seed_demo(always_open=always_open, password=password):
            self.stdout.write(line)
