"""FAQ answers and canned responses of the demo consortium (`manage.py seed_demo`).

Answers are matched by library and question, canned responses by scope and
shortcut: whatever exists (perhaps edited by an admin) is left as it is, so
seeding twice changes nothing. Libraries that do not exist are skipped.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from faq import services
from faq.models import Answer, CannedResponse, CannedScope
from libraries.models import Library


@dataclass(frozen=True)
class DemoAnswer:
    library: str | None  # slug; None: consortium-wide
    question: str
    answer: str
    tags: tuple[str, ...]
    is_public: bool = True


CONSORTIUM = None

DEMO_ANSWERS: tuple[DemoAnswer, ...] = (
    # Consortium-wide
    DemoAnswer(
        CONSORTIUM,
        "How do I renew my books?",
        "Sign in to **My account** in your library's online catalogue and choose "
        "*Renew* next to the items, or call your library's desk. Items someone else "
        "has placed a hold on cannot be renewed. Each library sets how many times "
        "an item may be renewed.",
        ("renewals", "renew", "due date", "checkouts"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "What happens if my books are overdue?",
        "Overdue rules differ between our member libraries: some charge no fines at "
        "all, others a small daily fine. Long-overdue items are usually billed at "
        "replacement cost until they come back. Ask your library or check its FAQ.",
        ("overdue", "fines", "late"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "How do I reset my PIN or password?",
        "Use *Forgot your PIN?* on your library's catalogue sign-in page; a reset "
        "link goes to the email address on your account. No email on file? Call "
        "or visit the desk with photo ID and staff will reset it.",
        ("pin", "password", "sign in", "login", "account"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Can I borrow e-books and audiobooks?",
        "Yes. With your library card and PIN you can borrow e-books and "
        "audiobooks in the **Libby** app on a phone, tablet or computer, and read "
        "on most e-readers. Loans end by themselves: there is nothing to return.",
        ("ebooks", "e-books", "audiobooks", "digital", "libby", "phone"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "How do I place a hold on a book that is checked out?",
        "Find the title in the catalogue and choose **Place hold**. You will get an "
        "email or text when it is waiting for you on the hold shelf; pick it up "
        "within a week.",
        ("holds", "hold", "reserve", "waiting list"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Can I borrow a book from another library (interlibrary loan)?",
        "Usually, yes. If no member library owns the book, your library can "
        "request it from a library elsewhere through **interlibrary loan**. "
        "Requests take one to three weeks; each library sets its own limits and "
        "fees.",
        ("interlibrary loan", "ill", "request", "another library"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "How do I print from a library computer?",
        "Send your document to the print station from any library computer, then "
        "release it at the printer with your card or a guest pass. Black-and-white "
        "pages cost 10¢, colour 50¢. You can also print from your own laptop or "
        "phone through the library's web printing page.",
        ("printing", "print", "computers", "copies"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Is there free Wi-Fi at the library?",
        "Yes: every member library has free Wi-Fi with no password. Choose the "
        "library's network and accept the terms page. It reaches the parking lot "
        "at most branches.",
        ("wifi", "wi-fi", "internet", "wireless"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "How do I cite a source in APA or MLA style?",
        "The library's citation guides show APA and MLA examples for books, "
        "articles and websites, and many databases have a *Cite* button that "
        "formats the reference for you. A librarian can check a bibliography with "
        "you in chat.",
        ("citation", "cite", "apa", "mla", "bibliography"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Can a librarian help me with homework or research?",
        "Yes. Librarians can help you find sources, search databases and narrow a "
        "topic, by chat or at the desk. We will not do the assignment for you, but "
        "we will help you get started.",
        ("homework", "research", "students", "sources"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Who can get a library card?",
        "Each member library issues its own library cards under its own rules: most "
        "give free cards to people who live in their area, and some also to "
        "non-residents, students or workers. Check your library's FAQ or ask us "
        "in chat.",
        ("library card", "card", "eligibility", "residents"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "How do I use the library's databases from home?",
        "Choose a database from your library's *Research* page and sign in with "
        "your library card number and PIN. Some databases can only be used inside "
        "the library because of their licences.",
        ("databases", "remote access", "from home", "research"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "I lost my library card. What should I do?",
        "Tell your library as soon as you can so nobody else can use it; staff "
        "will block the old card and give you a new one with the same account. "
        "Some libraries charge a small replacement fee.",
        ("lost card", "replacement", "stolen", "library card"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "How do I see what I have checked out?",
        "Sign in to **My account** in the catalogue: it lists your checkouts with "
        "due dates, your holds and any fees.",
        ("account", "checkouts", "due dates"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Can I donate books to the library?",
        "Most member libraries accept gently used books for their Friends of the "
        "Library sales. Please call first for large donations; textbooks and "
        "encyclopaedias are usually not accepted.",
        ("donations", "donate", "friends of the library"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Can I ask the library to buy a book?",
        "Yes: use *Suggest a purchase* in the catalogue. If the library buys it, "
        "you get the first hold.",
        ("suggest a purchase", "purchase", "buy", "request"),
    ),
    DemoAnswer(
        CONSORTIUM,
        "Patron asks for legal or medical advice",
        "We give information, not advice. Point to authoritative sources (the "
        "state's legal self-help centre, MedlinePlus) and suggest a lawyer or "
        "doctor; never interpret the patron's own situation.",
        ("legal advice", "medical advice", "policy"),
        is_public=False,
    ),
    DemoAnswer(
        CONSORTIUM,
        "Handling an abusive or spam chat",
        "Give one polite warning; if it continues, close the chat with the "
        "*spam or abuse* outcome. Do not argue, and do not share personal details.",
        ("abuse", "spam", "harassment", "policy"),
        is_public=False,
    ),
    # Springfield
    DemoAnswer(
        "springfield",
        "Can I get a library card if I live out of state?",
        "Yes. Out-of-state visitors can get a free **3-month visitor card** at any "
        "Springfield desk with a photo ID: up to 5 items at a time, no holds on "
        "new releases. Anyone who lives in the state gets a regular card for free.",
        ("library card", "out of state", "non-resident", "visitor card", "card"),
    ),
    DemoAnswer(
        "springfield",
        "Who can get a free Springfield library card?",
        "Anyone who lives in the state, not only city residents. Bring a photo ID "
        "and something with your current address (a bill, a lease or official "
        "mail from the last 30 days).",
        ("library card", "card", "residents", "proof of address", "eligibility"),
    ),
    DemoAnswer(
        "springfield",
        "Can I sign up for a library card online?",
        "Yes: pre-register online and pick the card up at any desk. Until then "
        "you get a 30-day **e-card** for the databases and e-books.",
        ("e-card", "register online", "sign up", "library card"),
    ),
    DemoAnswer(
        "springfield",
        "How many times can I renew an item at Springfield?",
        "Three times, online, by phone or at the desk, unless someone has placed a "
        "hold on it.",
        ("renewals", "renew", "how many times"),
    ),
    DemoAnswer(
        "springfield",
        "Does Springfield charge overdue fines?",
        "No overdue fines. Items 30 days overdue are billed at replacement cost, "
        "and the bill is cancelled when the item comes back.",
        ("fines", "overdue", "late", "fees"),
    ),
    DemoAnswer(
        "springfield",
        "Can I book a meeting room?",
        "The second-floor meeting rooms are closed for carpet replacement. Study "
        "rooms can still be booked online or at the desk.",
        ("meeting room", "study room", "book a room"),
    ),
    DemoAnswer(
        "springfield",
        "Where can I return books after hours?",
        "Use the book return by the main entrance; the drive-up return on "
        "Evergreen Terrace is out of service for now.",
        ("book return", "book drop", "after hours", "drive-up"),
    ),
    DemoAnswer(
        "springfield",
        "Springfield genealogy database from home?",
        "The genealogy database and the business directory work only on library "
        "computers and Wi-Fi (licence terms). Offer to place an interlibrary "
        "request for records instead.",
        ("genealogy", "ancestry", "databases", "remote access"),
        is_public=False,
    ),
    # Shelbyville
    DemoAnswer(
        "shelbyville",
        "Can non-residents get a Shelbyville library card?",
        "Yes, for a fee: **$40 a year** or $12 for 3 months, paid at the desk by "
        "cash or card (not online). Cards are free for people who live, work or "
        "own property in Shelby County, and for Shelbyville Community College "
        "students.",
        ("library card", "non-resident", "fee", "card", "out of county"),
    ),
    DemoAnswer(
        "shelbyville",
        "Does Shelbyville charge late fines?",
        "Yes: 25¢ a day on adult items, at most $5 an item; none on children's "
        "items. Accounts that owe more than $10 cannot borrow until they pay.",
        ("fines", "late", "overdue", "fees"),
    ),
    DemoAnswer(
        "shelbyville",
        "Why can't I use the databases from home with my non-resident card?",
        "The database licences cover Shelby County residents only, so non-resident "
        "cardholders use them on library computers or Wi-Fi.",
        ("databases", "remote access", "non-resident", "from home"),
    ),
    DemoAnswer(
        "shelbyville",
        "Is the bookmobile running?",
        "The bookmobile is out of service until further notice. Home delivery for "
        "homebound patrons still runs every Wednesday.",
        ("bookmobile", "home delivery", "outreach"),
    ),
    DemoAnswer(
        "shelbyville",
        "Can I request an interlibrary loan by phone?",
        "No: fill in the form at the desk or email ill@shelbyvillelibrary.example. "
        "Residents pay nothing; non-resident cardholders pay $2 a request.",
        ("interlibrary loan", "ill", "phone", "request"),
    ),
    DemoAnswer(
        "shelbyville",
        "Is the library closed at lunchtime?",
        "Yes, on weekdays from noon to 1 pm. Saturday hours run 10 am to 2 pm "
        "without a break.",
        ("hours", "lunch", "closed", "opening hours"),
    ),
    # Ogdenville
    DemoAnswer(
        "ogdenville",
        "Can I get an Ogdenville library card if I don't live in Ogdenville?",
        "Ogdenville cards are for residents only. If you have a card from another "
        "member library, register here for **reciprocal borrowing** with that card "
        "and a photo ID. Everyone may use the building, Wi-Fi and databases inside "
        "the library.",
        ("library card", "non-resident", "reciprocal borrowing", "card"),
    ),
    DemoAnswer(
        "ogdenville",
        "What is the Library of Things?",
        "Tools, telescopes, cake pans and more to borrow for a week (no renewals), "
        "for Ogdenville residents.",
        ("library of things", "tools", "telescope", "borrow equipment"),
    ),
    DemoAnswer(
        "ogdenville",
        "Are renewals automatic?",
        "Yes: everything is renewed automatically twice unless someone placed a "
        "hold, and you get an email before each due date.",
        ("renewals", "automatic renewal", "due date"),
    ),
    DemoAnswer(
        "ogdenville",
        "How late is the library open on Thursdays?",
        "Until 1 am: **Night Owl Thursdays**. After 9 pm the building is for quiet "
        "study only.",
        ("hours", "thursday", "night owl", "late"),
    ),
    DemoAnswer(
        "ogdenville",
        "Where should I park?",
        "The parking lot is being resurfaced: use the street entrance on Main "
        "Street and the street parking there.",
        ("parking", "car park", "entrance"),
    ),
    DemoAnswer(
        "ogdenville",
        "Urgent account problems on a Thursday night",
        "Only one librarian is on after 6 pm on Thursdays: urgent account problems "
        "wait for Friday morning; take the patron's question as a follow-up.",
        ("account", "thursday", "escalation"),
        is_public=False,
    ),
)


@dataclass(frozen=True)
class DemoCanned:
    library: str | None
    shortcut: str
    title: str
    body: str


DEMO_CANNED: tuple[DemoCanned, ...] = (
    DemoCanned(
        None,
        "hello",
        "Greeting",
        "Hi {patron_name}, I'm {librarian_name}, a librarian with {library_name}'s "
        "virtual reference desk. Let me look into that for you.",
    ),
    DemoCanned(
        None,
        "hours",
        "Today's hours",
        "{library_name}'s hours today: {library_hours_today}. Details and holiday "
        "hours are on {library_website}.",
    ),
    DemoCanned(
        None,
        "moment",
        "One moment",
        "Thanks for waiting, {patron_name}. I'm still searching; one more minute, please.",
    ),
    DemoCanned(
        None,
        "anything-else",
        "Anything else?",
        "Is there anything else I can help you with today?",
    ),
    DemoCanned(
        None,
        "bye",
        "Closing",
        "Thanks for using {library_name}'s chat, {patron_name}. Come back any time!",
    ),
    DemoCanned(
        None,
        "followup",
        "Follow up by email",
        "This needs a bit more research. If you leave your email address, a "
        "librarian from {library_name} will write back.",
    ),
    DemoCanned(
        "springfield",
        "card",
        "Springfield cards",
        "Anyone who lives in the state can get a free Springfield card with a photo "
        "ID and proof of address; out-of-state visitors get a free 3-month visitor "
        "card. You can pre-register at {library_website}.",
    ),
    DemoCanned(
        "shelbyville",
        "card",
        "Shelbyville cards",
        "Cards are free for Shelby County residents, workers and property owners; "
        "non-residents pay $40 a year at the desk. Our hours today: "
        "{library_hours_today}.",
    ),
    DemoCanned(
        "ogdenville",
        "reciprocal",
        "Reciprocal borrowing",
        "With a card from another member library you can register at {library_name} "
        "for reciprocal borrowing: bring that card and a photo ID.",
    ),
)


@transaction.atomic
def seed_faq_demo() -> str:
    """Create the demo answers and canned responses that are missing; one report line."""
    libraries = {lib.slug: lib for lib in Library.objects.all()}
    now = timezone.now()
    answers = 0
    for demo in DEMO_ANSWERS:
        library = libraries.get(demo.library) if demo.library else None
        if demo.library and library is None:
            continue
        if Answer.objects.filter(library=library, question=demo.question).exists():
            continue
        services.save_answer(
            answer=Answer(
                library=library,
                question=demo.question,
                answer=demo.answer,
                tags=list(demo.tags),
                is_public=demo.is_public,
                is_published=True,
            ),
            now=now,
        )
        answers += 1
    canned = 0
    for demo in DEMO_CANNED:
        library = libraries.get(demo.library) if demo.library else None
        if demo.library and library is None:
            continue
        scope = CannedScope.LIBRARY if library else CannedScope.CONSORTIUM
        if CannedResponse.objects.filter(
            scope=scope, library=library, shortcut=demo.shortcut
        ).exists():
            continue
        services.save_canned_response(
            response=CannedResponse(
                scope=scope,
                library=library,
                shortcut=demo.shortcut,
                title=demo.title,
                body=demo.body,
            )
        )
        canned += 1
    if answers or canned:
        return f"faq: {answers} answers and {canned} canned responses added"
    return "faq: every demo answer and canned response is in place"
