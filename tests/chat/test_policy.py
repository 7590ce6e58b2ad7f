"""The routing policy: pure, no database. Table tests name the rules; property
tests check the promises over random consortia."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.policy import (
    LADDER,
    ChatFacts,
    LibraryStaffing,
    Route,
    Step,
    route_chat,
    still_routable,
)

NOW = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
LOCAL = timedelta(seconds=45)
PARTNER = timedelta(seconds=60)
OVERFLOW = timedelta(seconds=90)

SPRINGFIELD, SHELBYVILLE, OGDENVILLE, CAPITAL_CITY = 1, 2, 3, 4


def staffing(
    library_id: int,
    available: int = 1,
    open_chats: int = 0,
    per_librarian: int = 3,
    *,
    is_open: bool = True,
    takes: bool = True,
    sends: bool = True,
    partners: tuple[int, ...] = (),
    local_wait: timedelta = LOCAL,
    partner_wait: timedelta = PARTNER,
) -> LibraryStaffing:
    return LibraryStaffing(
        library_id=library_id,
        is_open=is_open,
        available_librarians=available,
        open_chats=open_chats,
        chats_per_librarian=per_librarian,
        takes_overflow=takes,
        sends_overflow=sends,
        partner_ids=partners,
        local_wait=local_wait,
        partner_wait=partner_wait,
    )


def consortium(*libraries: LibraryStaffing) -> dict[int, LibraryStaffing]:
    return {library.library_id: library for library in libraries}


def route(
    libraries: dict[int, LibraryStaffing],
    chat: ChatFacts,
    after: Step | None = None,
) -> Route:
    return route_chat(
        chat=chat, staffing=libraries, after=after, overflow_wait=OVERFLOW, now=NOW
    )


def local(library_id: int, wait: timedelta = LOCAL) -> Route:
    return Route("local", library_id, (library_id,), NOW + wait)


def partner(*library_ids: int, wait: timedelta = PARTNER) -> Route:
    return Route("partner", SPRINGFIELD, library_ids, NOW + wait)


def overflow(*library_ids: int) -> Route:
    return Route("overflow", SPRINGFIELD, library_ids, NOW + OVERFLOW)


OFFLINE = Route("offline", None, (), None)
FROM_SPRINGFIELD = ChatFacts(origin_id=SPRINGFIELD)


def from_springfield(home: int) -> ChatFacts:
    return ChatFacts(origin_id=SPRINGFIELD, home_id=home)


@pytest.mark.parametrize(
    ("libraries", "chat", "after", "expected"),
    [
        # A new chat.
        pytest.param(
            [staffing(1), staffing(2)],
            FROM_SPRINGFIELD,
            None,
            local(1),
            id="origin-staffed-local",
        ),
        pytest.param(
            [staffing(1, is_open=False), staffing(2), staffing(3)],
            FROM_SPRINGFIELD,
            None,
            overflow(2, 3),
            id="origin-closed-overflow-at-once",
        ),
        pytest.param(
            [staffing(1, 0, partners=(2,)), staffing(2), staffing(3)],
            FROM_SPRINGFIELD,
            None,
            partner(2),
            id="origin-unstaffed-partner-at-once",
        ),
        pytest.param(
            [staffing(1, 0, partners=(2,)), staffing(2, 0), staffing(3)],
            FROM_SPRINGFIELD,
            None,
            overflow(3),
            id="origin-and-partners-unstaffed-overflow-at-once",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2), staffing(3, local_wait=LOCAL * 2)],
            from_springfield(3),
            None,
            Route("local", 3, (3,), NOW + LOCAL * 2),
            id="home-stands-in-with-its-own-wait",
        ),
        pytest.param(
            [staffing(1), staffing(3)],
            from_springfield(3),
            None,
            local(1),
            id="staffed-origin-keeps-chat-from-home",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2), staffing(3, takes=False)],
            from_springfield(3),
            None,
            overflow(2),
            id="home-not-taking-overflow-does-not-stand-in",
        ),
        pytest.param(
            [staffing(1, 0, sends=False), staffing(3)],
            from_springfield(3),
            None,
            OFFLINE,
            id="home-does-not-stand-in-for-origin-not-sending",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2), staffing(3, 0)],
            from_springfield(3),
            None,
            overflow(2),
            id="unstaffed-home-skipped",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2)],
            from_springfield(1),
            None,
            overflow(2),
            id="home-is-the-unstaffed-origin",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2)],
            from_springfield(9),
            None,
            overflow(2),
            id="home-not-a-member-ignored",
        ),
        pytest.param(
            [staffing(1, sends=False), staffing(2)],
            FROM_SPRINGFIELD,
            None,
            local(1),
            id="not-sending-staffed-local",
        ),
        pytest.param(
            [staffing(1, 0, sends=False), staffing(2)],
            FROM_SPRINGFIELD,
            None,
            OFFLINE,
            id="not-sending-unstaffed-offline-at-once",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, takes=False), staffing(3)],
            FROM_SPRINGFIELD,
            None,
            overflow(3),
            id="library-not-taking-overflow-never-offered",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, takes=False)],
            FROM_SPRINGFIELD,
            None,
            OFFLINE,
            id="only-non-taker-staffed-offline",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 1, 2), staffing(3, 2, 1)],
            FROM_SPRINGFIELD,
            None,
            overflow(3, 2),
            id="least-loaded-first",
        ),
        pytest.param(
            [staffing(1, 0), staffing(4, 1, 1), staffing(3, 2, 2), staffing(2, 3, 3)],
            FROM_SPRINGFIELD,
            None,
            overflow(2, 3, 4),
            id="equal-load-tie-broken-by-id",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 1, 0), staffing(3, 1, 2)],
            from_springfield(3),
            "local",
            overflow(3, 2),
            id="home-first-in-overflow",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 3, 0, is_open=False), staffing(3)],
            FROM_SPRINGFIELD,
            None,
            overflow(3),
            id="closed-library-with-librarians-never-offered",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 1, 3, 3), staffing(3, 2, 5, 3)],
            FROM_SPRINGFIELD,
            None,
            overflow(3),
            id="full-library-never-offered",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 2, 0, 0)],
            FROM_SPRINGFIELD,
            None,
            OFFLINE,
            id="library-without-chat-capacity-never-offered",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 0), staffing(3, is_open=False)],
            FROM_SPRINGFIELD,
            None,
            OFFLINE,
            id="nobody-staffed-offline-at-once",
        ),
        pytest.param(
            [staffing(2), staffing(3)],
            FROM_SPRINGFIELD,
            None,
            OFFLINE,
            id="unknown-origin-offline",
        ),
        # The local wait ran out (or the last local desk left).
        pytest.param(
            [staffing(1, partners=(2,)), staffing(2), staffing(3)],
            FROM_SPRINGFIELD,
            "local",
            partner(2, 1),
            id="partners-before-consortium-origin-last",
        ),
        pytest.param(
            [staffing(1, 1, 0, partners=(2,)), staffing(2, 1, 2)],
            FROM_SPRINGFIELD,
            "local",
            partner(2, 1),
            id="origin-last-even-when-least-loaded",
        ),
        pytest.param(
            [staffing(1, partners=(3, 2)), staffing(2, 1, 0), staffing(3, 1, 2)],
            from_springfield(3),
            "local",
            partner(3, 2, 1),
            id="home-first-among-partners",
        ),
        pytest.param(
            [staffing(1, partners=(2,)), staffing(2, 0), staffing(3)],
            FROM_SPRINGFIELD,
            "local",
            overflow(3, 1),
            id="partner-step-skipped-when-no-partner-staffed",
        ),
        pytest.param(
            [staffing(1, partners=(2,)), staffing(2, takes=False), staffing(3)],
            FROM_SPRINGFIELD,
            "local",
            overflow(3, 1),
            id="partner-not-taking-overflow-skipped",
        ),
        pytest.param(
            [staffing(1, partners=(1, 9, 2, 2)), staffing(2)],
            FROM_SPRINGFIELD,
            "local",
            partner(2, 1),
            id="self-unknown-and-repeated-partners-ignored",
        ),
        pytest.param(
            [staffing(1, 0, partners=(2,)), staffing(2), staffing(3)],
            FROM_SPRINGFIELD,
            "local",
            partner(2),
            id="unstaffed-origin-not-appended",
        ),
        pytest.param(
            [
                staffing(1, partners=(2,), partner_wait=PARTNER * 3),
                staffing(2, partner_wait=PARTNER * 5),
            ],
            FROM_SPRINGFIELD,
            "local",
            partner(2, 1, wait=PARTNER * 3),
            id="partner-wait-is-the-origins",
        ),
        pytest.param(
            [staffing(1), staffing(2)],
            FROM_SPRINGFIELD,
            "local",
            overflow(2, 1),
            id="after-local-overflow-origin-last",
        ),
        pytest.param(
            [staffing(1, takes=False), staffing(2, 0)],
            FROM_SPRINGFIELD,
            "local",
            overflow(1),
            id="after-local-only-origin-staffed-stays-with-origin",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 0)],
            FROM_SPRINGFIELD,
            "local",
            OFFLINE,
            id="after-local-nobody-staffed-offline",
        ),
        pytest.param(
            [staffing(1, sends=False), staffing(2)],
            FROM_SPRINGFIELD,
            "local",
            OFFLINE,
            id="after-local-not-sending-offline",
        ),
        pytest.param(
            [staffing(1, 0), staffing(2, 0), staffing(3)],
            from_springfield(3),
            "local",
            overflow(3),
            id="after-home-stood-in-overflow",
        ),
        # The partner wait ran out.
        pytest.param(
            [staffing(1, partners=(2,)), staffing(2), staffing(3)],
            FROM_SPRINGFIELD,
            "partner",
            overflow(2, 3, 1),
            id="after-partner-overflow",
        ),
        pytest.param(
            [staffing(1, partners=(2,)), staffing(2, 0)],
            FROM_SPRINGFIELD,
            "partner",
            overflow(1),
            id="after-partner-only-origin-staffed-stays-with-origin",
        ),
        pytest.param(
            [staffing(1, 0, partners=(2,)), staffing(2, 0)],
            FROM_SPRINGFIELD,
            "partner",
            OFFLINE,
            id="after-partner-nobody-staffed-offline",
        ),
        # The overflow wait ran out.
        pytest.param(
            [staffing(1), staffing(2)],
            FROM_SPRINGFIELD,
            "overflow",
            OFFLINE,
            id="after-overflow-offline",
        ),
    ],
)
def test_route_chat(libraries, chat, after, expected):
    assert route(consortium(*libraries), chat, after) == expected


def test_local_wait_is_the_origins():
    libraries = consortium(staffing(1, local_wait=timedelta(seconds=7)), staffing(2))

    assert route(libraries, FROM_SPRINGFIELD).escalate_at == NOW + timedelta(seconds=7)


def test_overflow_wait_is_the_consortiums():
    libraries = consortium(staffing(1, 0, local_wait=LOCAL * 9), staffing(2))

    chosen = route_chat(
        chat=FROM_SPRINGFIELD,
        staffing=libraries,
        after=None,
        overflow_wait=timedelta(seconds=11),
        now=NOW,
    )

    assert chosen.escalate_at == NOW + timedelta(seconds=11)


def test_transferred_chat_is_routed_from_its_target():
    libraries = consortium(staffing(1), staffing(2, 0), staffing(3))

    assert route(libraries, ChatFacts(origin_id=SHELBYVILLE)) == Route(
        "overflow", SHELBYVILLE, (1, 3), NOW + OVERFLOW
    )


@pytest.mark.parametrize(
    ("after", "now", "overflow_wait", "message"),
    [
        pytest.param("offline", NOW, OVERFLOW, "no further step", id="after-offline"),
        pytest.param("waiting", NOW, OVERFLOW, "unknown step", id="unknown-step"),
        pytest.param(None, NOW.replace(tzinfo=None), OVERFLOW, "aware", id="naive-now"),
        pytest.param(None, NOW, timedelta(0), "positive", id="zero-overflow-wait"),
    ],
)
def test_route_chat_rejects_bad_input(after, now, overflow_wait, message):
    with pytest.raises(ValueError, match=message):
        route_chat(
            chat=FROM_SPRINGFIELD,
            staffing=consortium(staffing(1)),
            after=after,
            overflow_wait=overflow_wait,
            now=now,
        )


def test_route_chat_rejects_staffing_under_the_wrong_id():
    with pytest.raises(ValueError, match="is library 2"):
        route_chat(
            chat=FROM_SPRINGFIELD,
            staffing={1: staffing(2)},
            after=None,
            overflow_wait=OVERFLOW,
            now=NOW,
        )


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"available": -1}, id="negative-librarians"),
        pytest.param({"open_chats": -1}, id="negative-chats"),
        pytest.param({"per_librarian": -1}, id="negative-capacity"),
        pytest.param({"local_wait": timedelta(0)}, id="zero-local-wait"),
        pytest.param({"partner_wait": -LOCAL}, id="negative-partner-wait"),
    ],
)
def test_library_staffing_rejects_impossible_values(fields):
    with pytest.raises(ValueError, match="library 1"):
        staffing(1, **fields)


@pytest.mark.parametrize(
    ("library", "free_slots", "is_staffed", "load"),
    [
        pytest.param(staffing(1, 2, 3, 2), 1, True, 1.5, id="free-slot"),
        pytest.param(staffing(1, 2, 4, 2), 0, False, 2.0, id="full"),
        pytest.param(staffing(1, 1, 5, 2), 0, False, 5.0, id="over-capacity-floors"),
        pytest.param(staffing(1, 0, 0, 2), 0, False, float("inf"), id="nobody"),
        pytest.param(staffing(1, 3, is_open=False), 9, False, 0.0, id="closed"),
    ],
)
def test_library_staffing_properties(library, free_slots, is_staffed, load):
    assert (library.free_slots, library.is_staffed, library.load) == (
        free_slots,
        is_staffed,
        load,
    )


@pytest.mark.parametrize(
    ("step", "library_ids", "expected"),
    [
        pytest.param("local", (1,), True, id="local-desk-still-there"),
        pytest.param("local", (2,), False, id="local-last-desk-left"),
        pytest.param("overflow", (2, 3, 1), True, id="one-of-many-still-there"),
        pytest.param("overflow", (2, 3), False, id="all-left"),
        pytest.param("partner", (4,), False, id="full-library-cannot-take-it"),
        pytest.param("partner", (9,), False, id="unknown-library"),
        pytest.param("overflow", (), False, id="nobody-offered"),
        pytest.param("offline", (), True, id="offline-stays-offline"),
    ],
)
def test_still_routable(step, library_ids, expected):
    libraries = consortium(
        staffing(1), staffing(2, 0), staffing(3, is_open=False), staffing(4, 1, 3)
    )

    assert (
        still_routable(route_step=step, library_ids=library_ids, staffing=libraries)
        is expected
    )


def test_still_routable_rejects_unknown_step():
    with pytest.raises(ValueError, match="unknown step"):
        still_routable(route_step="waiting", library_ids=(1,), staffing={})


# Properties over random consortia -------------------------------------------

UNKNOWN = 99
WAITS = st.integers(1, 600).map(lambda s: timedelta(seconds=s))
# Weighted so that most consortia have several staffed takers, often equally
# loaded: that is where preference order and tie-breaking matter.
MOSTLY_TRUE = st.sampled_from([True, True, True, False])


@st.composite
def consortia(draw) -> tuple[dict[int, LibraryStaffing], ChatFacts]:
    size = draw(st.integers(1, 6))
    ids = draw(st.lists(st.integers(1, 20), min_size=size, max_size=size, unique=True))
    libraries = {}
    for library_id in ids:
        libraries[library_id] = LibraryStaffing(
            library_id=library_id,
            is_open=draw(MOSTLY_TRUE),
            available_librarians=draw(st.sampled_from([0, 1, 1, 2, 3])),
            open_chats=draw(st.integers(0, 3)),
            chats_per_librarian=draw(st.integers(1, 3)),
            takes_overflow=draw(MOSTLY_TRUE),
            sends_overflow=draw(MOSTLY_TRUE),
            partner_ids=tuple(
                draw(st.lists(st.sampled_from([*ids, UNKNOWN]), max_size=4))
            ),
            local_wait=draw(WAITS),
            partner_wait=draw(WAITS),
        )
    origin = draw(st.sampled_from([*ids, UNKNOWN]))
    home = draw(st.sampled_from([None, *ids, UNKNOWN]))
    return libraries, ChatFacts(origin_id=origin, home_id=home)


AFTER = st.sampled_from([None, "local", "partner", "overflow"])
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


def staffed(libraries: dict[int, LibraryStaffing], library_id: int) -> bool:
    return library_id in libraries and libraries[library_id].is_staffed


@PROPERTY_SETTINGS
@given(consortia(), AFTER)
def test_never_offers_to_an_unstaffed_library(case, after):
    libraries, chat = case

    chosen = route(libraries, chat, after)

    assert all(staffed(libraries, i) for i in chosen.library_ids)


@PROPERTY_SETTINGS
@given(consortia(), AFTER)
def test_never_offers_overflow_to_a_library_that_does_not_take_it(case, after):
    libraries, chat = case

    chosen = route(libraries, chat, after)

    if chosen.step == "local":
        assert chosen.library_ids in {(chat.origin_id,), (chat.home_id,)}
        if chosen.library_ids != (chat.origin_id,):
            assert libraries[chat.home_id].takes_overflow
            assert libraries[chat.origin_id].sends_overflow
    else:
        assert all(
            libraries[i].takes_overflow
            for i in chosen.library_ids
            if i != chat.origin_id
        )
    if chosen.step in {"partner", "overflow"}:
        assert libraries[chat.origin_id].sends_overflow
        assert chosen.library_ids[-1] == chat.origin_id or not staffed(
            libraries, chat.origin_id
        )


@PROPERTY_SETTINGS
@given(consortia(), AFTER)
def test_never_strands_a_chat(case, after):
    libraries, chat = case

    chosen = route(libraries, chat, after)

    if chosen.step == "offline":
        assert chosen == Route("offline", None, (), None)
    else:
        assert chosen.escalate_at is not None
        assert chosen.escalate_at > NOW
        assert chosen.library_ids
        assert len(set(chosen.library_ids)) == len(chosen.library_ids)
        assert chosen.queue_library_id is not None


@PROPERTY_SETTINGS
@given(consortia(), AFTER)
def test_always_moves_down_the_ladder(case, after):
    libraries, chat = case

    chosen = route(libraries, chat, after)

    if after is not None:
        assert LADDER.index(chosen.step) > LADDER.index(after)


@PROPERTY_SETTINGS
@given(consortia(), AFTER, st.data())
def test_same_input_same_route_whatever_the_order(case, after, data):
    libraries, chat = case
    items = list(libraries.items())
    shuffled = data.draw(st.permutations(items))

    first = route(libraries, chat, after)

    assert route(libraries, chat, after) == first
    assert route(dict(reversed(items)), chat, after) == first
    assert route(dict(shuffled), chat, after) == first


@PROPERTY_SETTINGS
@given(consortia(), AFTER)
def test_offers_home_first_then_least_loaded_then_lowest_id(case, after):
    libraries, chat = case

    chosen = route(libraries, chat, after)

    others = [i for i in chosen.library_ids if i != chat.origin_id]
    preference = [(i != chat.home_id, libraries[i].load, i) for i in others]
    assert preference == sorted(preference)
    assert chat.origin_id not in chosen.library_ids[:-1] or chosen.step == "local"


@PROPERTY_SETTINGS
@given(consortia())
def test_new_chat_is_never_offline_while_someone_can_take_it(case):
    libraries, chat = case
    origin = libraries.get(chat.origin_id)
    anyone = any(s.is_staffed and s.takes_overflow for s in libraries.values())

    chosen = route(libraries, chat)

    if origin is not None and origin.is_staffed:
        assert chosen.step == "local"
    if origin is not None and origin.sends_overflow and anyone:
        assert chosen.step != "offline"


@PROPERTY_SETTINGS
@given(consortia(), st.sampled_from(["local", "partner"]))
def test_escalation_never_goes_offline_while_the_origin_is_staffed(case, after):
    libraries, chat = case
    origin = libraries.get(chat.origin_id)

    chosen = route(libraries, chat, after)

    if origin is not None and origin.sends_overflow and origin.is_staffed:
        assert chosen.step != "offline"
        assert chat.origin_id in chosen.library_ids


@PROPERTY_SETTINGS
@given(consortia())
def test_climbing_the_ladder_ends_offline(case):
    libraries, chat = case
    climbed = [route(libraries, chat).step]

    for _ in LADDER:
        if climbed[-1] == "offline":
            break
        climbed.append(route(libraries, chat, climbed[-1]).step)

    assert climbed[-1] == "offline"
    assert climbed == sorted(set(climbed), key=LADDER.index)


@PROPERTY_SETTINGS
@given(consortia(), AFTER)
def test_a_placed_chat_is_still_routable(case, after):
    libraries, chat = case

    chosen = route(libraries, chat, after)

    assert still_routable(
        route_step=chosen.step, library_ids=chosen.library_ids, staffing=libraries
    )
