"""Bench-only seeding on top of `seed_demo --always-open`, in the bench database.

    DJANGO_SETTINGS_MODULE=refdesk.settings python -m bench.seed --per-library 4

Adds librarians `bench-{slug}-{n}` through `libraries.services.create_librarian`,
raises every demo library's `chats_per_librarian` so that capacity never routes
a bench chat, and adds `bench-quiet`: an always-open library that sends overflow
but takes none, with a short local wait, whose one librarian stays at the desk
without answering (the overflow-lateness probe). Prints a JSON summary.
"""

import argparse
import json
import os

import django

QUIET_SLUG = "bench-quiet"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-library", type=int, default=4)
    parser.add_argument("--chats-per-librarian", type=int, default=1000)
    parser.add_argument("--quiet-wait", type=int, default=2)
    parser.add_argument(
        "--password", default=os.environ.get("DEMO_PASSWORD", "refdesk-demo")
    )
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refdesk.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from libraries import services
    from libraries.demo import DEMO_LIBRARIES
    from libraries.models import Library, Role

    # One hash for every bench account (same password): PBKDF2 at Django's
    # default cost takes ~0.8 s per librarian here, 20 s of every full run.
    password = make_password(args.password)
    created: list[str] = []
    librarians: dict[str, list[str]] = {}
    for demo in DEMO_LIBRARIES:
        library = Library.objects.get(slug=demo.slug)
        names = [f"{demo.slug}-1", f"{demo.slug}-2"]
        for n in range(3, args.per_library + 1):
            username = f"bench-{demo.slug}-{n}"
            if not get_user_model().objects.filter(username=username).exists():
                services.create_librarian(
                    library=library,
                    username=username,
                    email=f"{username}@bench.example",
                    display_name=f"Bench {n}",
                    role=Role.LIBRARIAN,
                )
                created.append(username)
            names.append(username)
        librarians[demo.slug] = names[: args.per_library]
    Library.objects.filter(slug__in=librarians).update(
        chats_per_librarian=args.chats_per_librarian
    )

    quiet, _ = Library.objects.update_or_create(
        slug=QUIET_SLUG,
        defaults={
            "name": "Bench Quiet Library",
            "timezone": "UTC",
            "website": "https://quiet.bench.example",
            "contact_email": "quiet@bench.example",
            "sends_overflow": True,
            "takes_overflow": False,
            "always_open": True,
            "local_wait_seconds": args.quiet_wait,
            "chats_per_librarian": args.chats_per_librarian,
            "local_info_verified_at": timezone.now(),
        },
    )
    quiet_user = f"{QUIET_SLUG}-1"
    if not get_user_model().objects.filter(username=quiet_user).exists():
        services.create_librarian(
            library=quiet,
            username=quiet_user,
            email="quiet-1@bench.example",
            display_name="Quiet",
            role=Role.LIBRARIAN,
        )
        created.append(quiet_user)
    get_user_model().objects.filter(username__in=created).update(password=password)
    postal = {d.slug: list(d.postal_codes) for d in DEMO_LIBRARIES}
    print(
        json.dumps(
            {
                "librarians": librarians,
                "quiet": {"slug": QUIET_SLUG, "librarian": quiet_user},
                "postal_codes": postal,
            }
        )
    )


if __name__ == "__main__":
    main()
