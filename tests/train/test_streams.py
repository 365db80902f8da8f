"""Worker-side streams: several shards advanced together."""

from __future__ import annotations

import threading

from raylung.train.streams import zip_streams


def test_streams_are_fetched_concurrently():
    """Each stream's first item waits for the other's to be asked for: plain zip would hang."""
    both = threading.Barrier(2, timeout=10)

    def stream(name):
        both.wait()
        yield from (f"{name}{i}" for i in range(3))

    assert list(zip_streams(stream("h"), stream("p"))) == [("h0", "p0"), ("h1", "p1"),
                                                           ("h2", "p2")]


def test_ends_with_the_shortest_stream_and_keeps_order():
    assert list(zip_streams(range(5), iter("abc"))) == [(0, "a"), (1, "b"), (2, "c")]
    assert list(zip_streams(range(3))) == [(0,), (1,), (2,)]


def test_first_items_are_fetched_before_they_are_asked_for():
    """A worker zips its streams, then builds its engines: the streams start meanwhile."""
    started = threading.Event()

    def stream():
        started.set()
        yield "first"

    zipped = zip_streams(stream())
    assert started.wait(timeout=10)
    assert list(zipped) == [("first",)]
