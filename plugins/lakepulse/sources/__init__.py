"""Event sources the producer replays: the NAB corpus and a built-in synthetic generator.

Both yield :class:`ReplayEvent` items: an event plus its offset in seconds from the start of
the replay, which the producer divides by the speed-up to know when to send it.
"""

from __future__ import annotations

from typing import NamedTuple

from lakepulse.events import Event


class ReplayEvent(NamedTuple):
    offset: float  # seconds of event time since the replay's start
    event: Event
