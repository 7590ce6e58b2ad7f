"""The per-socket seq buffer: swapped frames leave in order, gaps are filled."""

import asyncio

import pytest

from chat.ordering import SeqOrder

pytestmark = pytest.mark.asyncio


def frame(seq: int) -> dict:
    return {"type": "message", "seq": seq}


async def _buffer(last: int = 0, stored: tuple[int, ...] = ()):
    sent: list[int] = []

    async def send(f):
        sent.append(f["seq"])

    async def fetch(after):
        return [frame(s) for s in stored if s > after]

    return SeqOrder(send, fetch, last, gap_wait=0.01), sent


async def test_swapped_frames_leave_in_seq_order():
    order, sent = await _buffer(last=3)
    await order.push(frame(5))
    await order.push(frame(4))
    assert sent == [4, 5]


async def test_frames_already_sent_are_dropped():
    order, sent = await _buffer(last=3)
    await order.push(frame(2))
    await order.push(frame(3))
    await order.push(frame(4))
    assert sent == [4]


async def test_a_gap_that_stays_open_is_filled_from_the_database():
    order, sent = await _buffer(last=1, stored=(2, 3))
    await order.push(frame(3))  # 2 was lost on the channel layer
    await asyncio.sleep(0.05)
    assert sent == [2, 3]


async def test_history_sent_outside_the_buffer_moves_it_on():
    order, sent = await _buffer(last=0)
    order.sent_up_to(7)
    await order.push(frame(7))
    await order.push(frame(8))
    assert sent == [8]


async def test_first_frame_of_a_fresh_buffer_waits_for_seq_one():
    order, sent = await _buffer(last=0, stored=(1, 2))
    await order.push(frame(2))
    assert sent == []
    await asyncio.sleep(0.05)
    assert sent == [1, 2]


async def test_catch_up_sends_what_was_stored_before_the_socket_listened():
    order, sent = await _buffer(last=2, stored=(1, 2, 3, 4))
    await order.push(frame(6))  # published after joining, before the read
    await order.catch_up()
    assert sent == [3, 4]
    await order.push(frame(5))
    assert sent == [3, 4, 5, 6]
    await order.push(frame(4))
    assert sent == [3, 4, 5, 6]


async def test_a_closed_buffer_sends_nothing_more_even_from_a_read_in_flight():
    sent: list[int] = []
    reading = asyncio.Event()
    release = asyncio.Event()

    async def send(f):
        sent.append(f["seq"])

    async def fetch(after):
        reading.set()
        await release.wait()
        return [frame(2), frame(3)]

    order = SeqOrder(send, fetch, 1, gap_wait=0.01)
    catching_up = asyncio.create_task(order.catch_up())
    await reading.wait()
    order.close()  # the chat left the socket (closed, transferred) meanwhile
    release.set()
    await catching_up
    await order.push(frame(2))
    assert sent == []


async def test_gap_reads_take_turns_through_the_gate():
    """Reads through one gate never overlap, and each buffer still gets its gap."""
    gate = asyncio.Semaphore(1)
    reading = 0
    most = 0
    sent: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def buffer(name: str) -> SeqOrder:
        async def send(f):
            sent[name].append(f["seq"])

        async def fetch(after):
            nonlocal reading, most
            reading += 1
            most = max(most, reading)
            await asyncio.sleep(0.03)
            reading -= 1
            return [frame(2), frame(3)]

        return SeqOrder(send, fetch, 1, gap_wait=0.01, gate=gate)

    orders = [buffer(name) for name in sent]
    for order in orders:
        await order.push(frame(3))
    await asyncio.sleep(0.2)
    assert sent == {"a": [2, 3], "b": [2, 3], "c": [2, 3]}
    assert most == 1


async def test_a_gap_that_closes_while_waiting_for_the_gate_reads_nothing():
    gate = asyncio.Semaphore(1)
    order, sent = await _buffer(last=1, stored=(2, 3))
    order.gate = gate
    reads = 0
    fetch = order.fetch

    async def counted(after):
        nonlocal reads
        reads += 1
        return await fetch(after)

    order.fetch = counted
    async with gate:  # another buffer's read is under way
        await order.push(frame(3))
        await asyncio.sleep(0.05)  # past the gap wait: now waiting for the gate
        await order.push(frame(2))  # the late frame arrives by itself
    await asyncio.sleep(0.05)
    assert sent == [2, 3]
    assert reads == 0
    assert gate.locked() is False
