"""The bench's delivery timeline places slow messages in the phase."""

from bench.run import timeline


def test_a_slow_start_shows_in_the_first_slice_only():
    second = 1_000_000_000
    samples = [(i * second // 10, 200.0 if i < 10 else 2.0) for i in range(100)]
    slices = timeline(samples, slices=10)
    assert [s["n"] for s in slices] == [10] * 10
    assert slices[0]["p99"] == 200.0
    assert {s["p99"] for s in slices[1:]} == {2.0}
    assert [s["from_s"] for s in slices[:3]] == [0.0, 1.0, 2.0]


def test_no_samples_no_slices():
    assert timeline([]) == []
