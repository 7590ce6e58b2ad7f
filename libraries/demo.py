"""The demo consortium that `manage.py seed_demo` creates.

Three member libraries in three time zones, two librarians each and one
consortium admin, as PROTOCOL.md describes. Seeding creates what is missing
and leaves what exists as it is: a library that exists keeps its fields, hours,
closures, service areas and local info (an admin may have edited them), and an
account that exists keeps its password. The one exception is `always_open`,
which seeding turns on for every demo library when asked, so the demo works
at any hour; it never turns it off. Running it twice changes nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from libraries import directory, services
from libraries.models import (
    Closure,
    Library,
    LocalInfoKind,
    LocalInfoSection,
    Role,
    ServiceAreaKind,
    SpecialHours,
    WeeklyHours,
    WidgetOrigin,
)

DEFAULT_PASSWORD = "refdesk-demo"
ADMIN_USERNAME = "admin"

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
type Span = tuple[int, time, time]  # weekday, opens, closes (<= opens: overnight)
type DateRule = Callable[[int], date]  # year -> the date in that year


def thanksgiving(year: int) -> date:
    """The fourth Thursday of November."""
    first = date(year, 11, 1)
    return first + timedelta(days=(THU - first.weekday()) % 7 + 21)


def fixed(month: int, day: int) -> DateRule:
    return lambda year: date(year, month, day)


def next_date(rule: DateRule, *, today: date) -> date:
    """The first date the rule gives on or after today."""
    this_year = rule(today.year)
    return this_year if this_year >= today else rule(today.year + 1)


@dataclass(frozen=True)
class DemoClosure:
    rule: DateRule
    days: int
    reason: str


@dataclass(frozen=True)
class DemoSpecialHours:
    rule: DateRule
    opens: time
    closes: time
    note: str


@dataclass(frozen=True)
class DemoLibrary:
    slug: str
    name: str
    timezone: str
    website: str
    contact_email: str
    brand_color: str
    weekly: tuple[Span, ...]
    special: tuple[DemoSpecialHours, ...]
    closures: tuple[DemoClosure, ...]
    postal_codes: tuple[str, ...]
    places: tuple[str, ...]
    local_info: tuple[tuple[str, str, str], ...]  # kind, title, Markdown body
    librarians: tuple[tuple[str, str], ...]  # display name, email


def _days(
    weekdays: range | tuple[int, ...], opens: time, closes: time
) -> tuple[Span, ...]:
    return tuple((day, opens, closes) for day in weekdays)


SPRINGFIELD = DemoLibrary(
    slug="springfield",
    name="Springfield Public Library",
    timezone="America/Chicago",
    website="https://www.springfieldlibrary.example",
    contact_email="reference@springfieldlibrary.example",
    brand_color="#1f4e79",
    weekly=(
        *_days(range(MON, THU + 1), time(9), time(20)),
        (FRI, time(9), time(18)),
        (SAT, time(10), time(17)),
        (SUN, time(13), time(17)),
    ),
    special=(
        DemoSpecialHours(
            lambda year: thanksgiving(year) - timedelta(days=1),
            time(9),
            time(15),
            "Day before Thanksgiving: closing at 3 pm",
        ),
        DemoSpecialHours(
            fixed(12, 24), time(9), time(13), "Christmas Eve: closing at 1 pm"
        ),
    ),
    closures=(
        DemoClosure(thanksgiving, 1, "Thanksgiving"),
        DemoClosure(fixed(12, 25), 1, "Christmas Day"),
        DemoClosure(fixed(1, 1), 1, "New Year's Day"),
    ),
    postal_codes=("62701", "62702", "62703", "62704"),
    places=("Springfield", "Springfield Heights", "Riverton"),
    local_info=(
        (
            LocalInfoKind.CARDS,
            "Library cards and non-residents",
            """\
- **Free cards for anyone who lives in the state**, not only city residents.
  Bring a photo ID and something with a current address (a bill, a lease, mail
  from a government office within the last 30 days).
- Patrons can **pre-register online** and pick the card up at any desk; until
  then they get a 30-day e-card for the databases and e-books.
- Out-of-state visitors can get a free 3-month *visitor card* (5 items at a
  time, no holds on new releases).
- Lost card: $2 replacement, waived once a year.
""",
        ),
        (
            LocalInfoKind.BORROWING,
            "Borrowing and renewals",
            """\
- Books and audiobooks 3 weeks, DVDs and video games 1 week, up to 50 items.
- **3 renewals** online, by phone or at the desk, unless someone has a hold.
- No overdue fines. Items 30 days overdue are billed at replacement cost;
  the bill is cancelled when the item comes back.
- Holds: up to 15 at a time, kept 7 days on the hold shelf.
""",
        ),
        (
            LocalInfoKind.ILL,
            "Interlibrary loan",
            """\
- Free for cardholders in good standing; **5 active requests** at a time.
- Request through the catalogue ("Request from another library") or the desk
  can place it for them during the chat.
- Books usually arrive in 1–2 weeks; articles are emailed as PDFs.
- Not requestable: items Springfield owns, new releases under 6 months old.
""",
        ),
        (
            LocalInfoKind.DATABASES,
            "Databases and remote access",
            """\
- From home: log in with the **card number and PIN** (PIN resets at the desk
  or by phone).
- Remote: newspaper archive (1880 to today), consumer reports, language
  learning, online courses, test prep.
- In the library only: the genealogy database and the business directory.
- E-card holders get remote access too, for 30 days.
""",
        ),
        (
            LocalInfoKind.CONTACTS,
            "Contacts for escalation",
            """\
- Reference desk: 555-0100, reference@springfieldlibrary.example
- Head of adult services: Helen Lovejoy, hlovejoy@springfieldlibrary.example
- Card and account problems: circulation@springfieldlibrary.example
- Local history questions go to the history room (Tue–Sat), 555-0104.
""",
        ),
        (
            LocalInfoKind.ALERTS,
            "Current alerts",
            """\
- **Second-floor meeting rooms closed** for carpet replacement; study rooms are
  still bookable.
- The drive-up book return on Evergreen Terrace is out of service: use the
  one by the main entrance.
""",
        ),
    ),
    librarians=(
        ("Marge", "marge@springfieldlibrary.example"),
        ("Ned", "ned@springfieldlibrary.example"),
    ),
)

SHELBYVILLE = DemoLibrary(
    slug="shelbyville",
    name="Shelbyville Public Library",
    timezone="America/New_York",
    website="https://www.shelbyvillelibrary.example",
    contact_email="askus@shelbyvillelibrary.example",
    brand_color="#7a1f3d",
    weekly=(
        # closed for lunch on weekdays
        *_days(range(MON, FRI + 1), time(9), time(12)),
        *_days(range(MON, FRI + 1), time(13), time(18)),
        (SAT, time(10), time(14)),
    ),
    special=(
        DemoSpecialHours(
            fixed(12, 31), time(9), time(12), "New Year's Eve: morning only"
        ),
    ),
    closures=(
        DemoClosure(thanksgiving, 2, "Thanksgiving and the day after"),
        DemoClosure(fixed(12, 24), 3, "Christmas"),
        DemoClosure(fixed(1, 1), 1, "New Year's Day"),
    ),
    postal_codes=("40065", "40066", "40067"),
    places=("Shelbyville", "Simpsonville", "Bagdad"),
    local_info=(
        (
            LocalInfoKind.CARDS,
            "Library cards and non-residents",
            """\
- Free for people who **live, work or own property in Shelby County**.
- **Non-residents pay $40 a year** (or $12 for 3 months), cash or card at
  the desk only; the fee cannot be paid online.
- Students of Shelbyville Community College get a free card with their
  student ID, whatever their address.
- Proof of address is required every year at renewal.
""",
        ),
        (
            LocalInfoKind.BORROWING,
            "Borrowing and renewals",
            """\
- Books 2 weeks, DVDs 3 days, up to 25 items (5 DVDs).
- **2 renewals**, online or by phone, none if there is a hold.
- Fines: 25¢ a day on adult items, capped at $5 an item; none on children's
  items. Accounts owing over $10 are blocked.
""",
        ),
        (
            LocalInfoKind.ILL,
            "Interlibrary loan",
            """\
- Residents: free. **Non-resident cardholders: $2 a request**, charged on pickup.
- Request by form at the desk or by email to ill@shelbyvillelibrary.example;
  the library does not take ILL requests by phone.
- Allow 2–3 weeks. Loans from outside the state may carry a lender's fee,
  which the patron is asked about first.
""",
        ),
        (
            LocalInfoKind.DATABASES,
            "Databases and remote access",
            """\
- Remote access is for **resident cardholders only** (licence terms);
  non-resident cardholders use the databases in the library.
- Log in with the 14-digit card number and the last four digits of the
  phone number on the account.
- Highlights: auto repair manuals, small-business plans, the county newspaper
  archive.
""",
        ),
        (
            LocalInfoKind.CONTACTS,
            "Contacts for escalation",
            """\
- Ask Us desk: 555-0140, askus@shelbyvillelibrary.example
- Library director: Agnes Hobart, director@shelbyvillelibrary.example
- Billing and fines disputes: 555-0142 (weekdays, not during the lunch closure)
""",
        ),
        (
            LocalInfoKind.ALERTS,
            "Current alerts",
            """\
- The **bookmobile is out of service** until further notice; home delivery
  still runs on Wednesdays.
- Public computers need a card or a guest pass from the desk since the
  new print system went in.
""",
        ),
    ),
    librarians=(
        ("Lurleen", "lurleen@shelbyvillelibrary.example"),
        ("Shelby", "shelby@shelbyvillelibrary.example"),
    ),
)

OGDENVILLE = DemoLibrary(
    slug="ogdenville",
    name="Ogdenville Library",
    timezone="America/Denver",
    website="https://www.ogdenvillelibrary.example",
    contact_email="info@ogdenvillelibrary.example",
    brand_color="#2e5e3a",
    weekly=(
        *_days((MON, TUE, WED), time(10), time(21)),
        (THU, time(12), time(1)),  # Night Owl Thursday, until 1 am
        *_days((FRI, SAT), time(10), time(18)),
    ),
    special=(
        DemoSpecialHours(
            fixed(12, 24), time(10), time(14), "Christmas Eve: closing at 2 pm"
        ),
    ),
    closures=(
        DemoClosure(thanksgiving, 1, "Thanksgiving"),
        DemoClosure(fixed(12, 25), 1, "Christmas Day"),
        DemoClosure(fixed(1, 1), 1, "New Year's Day"),
    ),
    postal_codes=("84401", "84403", "84404"),
    places=("Ogdenville", "North Ogdenville", "Harrisville"),
    local_info=(
        (
            LocalInfoKind.CARDS,
            "Library cards and non-residents",
            """\
- Cards are issued to **Ogdenville residents only**; there is no paid
  non-resident card.
- **Reciprocal borrowing**: cardholders of another member library can register
  here with their home card and a photo ID, and borrow with the same limits.
  Their home library must be in good standing with them.
- Everyone else can use the building, the Wi-Fi and the databases in the
  library without a card.
""",
        ),
        (
            LocalInfoKind.BORROWING,
            "Borrowing and renewals",
            """\
- Everything 3 weeks, **renewed automatically twice** unless there is a hold;
  patrons get an email before each due date.
- Library of Things (tools, telescopes, cake pans): 1 week, no renewals,
  Ogdenville residents only.
- No fines; 3 items 6 weeks overdue block the account.
""",
        ),
        (
            LocalInfoKind.ILL,
            "Interlibrary loan",
            """\
- For Ogdenville cardholders only (reciprocal borrowers ask their home
  library). Free, **3 active requests**.
- Books come by the statewide courier in about 10 days; pickup at the
  Thursday-night desk is fine.
""",
        ),
        (
            LocalInfoKind.DATABASES,
            "Databases and remote access",
            """\
- Remote access with card number and PIN for Ogdenville cardholders.
- Reciprocal borrowers and walk-in visitors use the databases on library
  computers or the in-building Wi-Fi.
- Popular: the state's digital newspaper collection, repair manuals, a
  Norwegian–English dictionary (the library's heritage collection).
""",
        ),
        (
            LocalInfoKind.CONTACTS,
            "Contacts for escalation",
            """\
- Information desk: 555-0170, info@ogdenvillelibrary.example
- Head librarian: Astrid Olsen, aolsen@ogdenvillelibrary.example
- Thursday nights after 6 pm only one librarian is on: urgent account
  problems wait for Friday.
""",
        ),
        (
            LocalInfoKind.ALERTS,
            "Current alerts",
            """\
- **Night Owl Thursdays** run until 1 am; the building is quiet-study only
  after 9 pm.
- Parking lot resurfacing: use the street entrance on Main.
""",
        ),
    ),
    librarians=(
        ("Ingrid", "ingrid@ogdenvillelibrary.example"),
        ("Olaf", "olaf@ogdenvillelibrary.example"),
    ),
)

DEMO_LIBRARIES = (SPRINGFIELD, SHELBYVILLE, OGDENVILLE)


@transaction.atomic
def seed_demo(
    *, always_open: bool, password: str, today: date | None = None
) -> list[str]:
    """Create whatever part of the demo consortium is missing; return report lines."""
    today = today or timezone.localdate()
    report = [_seed_admin(password=password)]
    for demo in DEMO_LIBRARIES:
        library, line = _seed_library(demo, today=today)
        report.append(line)
        report.append(_seed_demo_origins(library))
        for number, (display_name, email) in enumerate(demo.librarians, start=1):
            report.append(
                _seed_librarian(
                    library,
                    username=f"{demo.slug}-{number}",
                    display_name=display_name,
                    email=email,
                    password=password,
                )
            )
    from faq.demo import seed_faq_demo  # faq builds on libraries, not the reverse

    report.append(seed_faq_demo())
    if always_open:
        report.append(_open_around_the_clock())
    return report


# The demo serves the member-site page (/demo/{slug}/) from refdesk itself, so
# the local origins `make run` uses may embed the widget and call the API.
DEMO_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")


def _seed_demo_origins(library: Library) -> str:
    added = [
        origin
        for origin in DEMO_ORIGINS
        if WidgetOrigin.objects.get_or_create(library=library, origin=origin)[1]
    ]
    if not added:
        return f"library {library.slug}: demo widget origins already registered"
    return f"library {library.slug}: widget origins {', '.join(added)} registered"


def _seed_admin(*, password: str) -> str:
    user_model = get_user_model()
    if user_model.objects.filter(username=ADMIN_USERNAME).exists():
        return f"consortium admin {ADMIN_USERNAME}: already exists, left as it is"
    librarian = services.create_librarian(
        library=None,
        username=ADMIN_USERNAME,
        email="admin@consortium.example",
        display_name="Consortium admin",
        role=Role.CONSORTIUM_ADMIN,
        password=password,
    )
    user = librarian.user
    if not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return f"consortium admin {ADMIN_USERNAME}: created"


def _seed_library(demo: DemoLibrary, *, today: date) -> tuple[Library, str]:
    existing = Library.objects.filter(slug=demo.slug).first()
    if existing is not None:
        return existing, f"library {demo.slug}: already exists, left as it is"
    library = Library(
        slug=demo.slug,
        name=demo.name,
        timezone=demo.timezone,
        website=demo.website,
        contact_email=demo.contact_email,
        brand_color=demo.brand_color,
        sends_overflow=True,
        takes_overflow=True,
        local_wait_seconds=None,
        partner_wait_seconds=None,
        local_info_verified_at=timezone.now(),
        local_info_verified_by=get_user_model()
        .objects.filter(username=ADMIN_USERNAME)
        .first(),
    )
    library.full_clean()
    library.save()
    WeeklyHours.objects.bulk_create(
        WeeklyHours(library=library, weekday=weekday, opens=opens, closes=closes)
        for weekday, opens, closes in demo.weekly
    )
    SpecialHours.objects.bulk_create(
        SpecialHours(
            library=library,
            day=next_date(special.rule, today=today),
            opens=special.opens,
            closes=special.closes,
            note=special.note,
        )
        for special in demo.special
    )
    closures = []
    for closure in demo.closures:
        first = next_date(closure.rule, today=today)
        closures.append(
            Closure(
                library=library,
                first=first,
                last=first + timedelta(days=closure.days - 1),
                reason=closure.reason,
            )
        )
    Closure.objects.bulk_create(closures)
    areas = [(ServiceAreaKind.POSTAL_CODE, code) for code in demo.postal_codes]
    areas += [(ServiceAreaKind.PLACE, place) for place in demo.places]
    for kind, value in areas:
        services.add_service_area(library=library, kind=kind, value=value)
    LocalInfoSection.objects.bulk_create(
        LocalInfoSection(library=library, kind=kind, title=title, body=body, position=i)
        for i, (kind, title, body) in enumerate(demo.local_info)
    )
    counts = ", ".join(
        f"{count} {noun}"
        for count, noun in [
            (len(demo.weekly), "weekly spans"),
            (
                len(demo.special),
                "special days" if len(demo.special) > 1 else "special day",
            ),
            (len(closures), "closures"),
            (len(areas), "service areas"),
            (len(demo.local_info), "local info sections"),
        ]
    )
    return (
        library,
        f"library {demo.slug}: created ({demo.name}, {demo.timezone}; {counts})",
    )


def _seed_librarian(
    library: Library, *, username: str, display_name: str, email: str, password: str
) -> str:
    if get_user_model().objects.filter(username=username).exists():
        return f"librarian {username}: already exists, left as it is"
    services.create_librarian(
        library=library,
        username=username,
        email=email,
        display_name=display_name,
        role=Role.LIBRARIAN,
        password=password,
    )
    return f"librarian {username}: created ({display_name}, {library.slug})"


def _open_around_the_clock() -> str:
    slugs = [demo.slug for demo in DEMO_LIBRARIES]
    changed = Library.objects.filter(slug__in=slugs, always_open=False).update(
        always_open=True
    )
    directory.changed()
    if changed:
        return f"always open: turned on for {changed} demo libraries"
    return "always open: already on for every demo library"
