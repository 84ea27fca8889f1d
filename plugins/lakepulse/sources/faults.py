"""Fault injection: turn a clean event stream into one with the faults a real pipeline meets.

Each message sent is, with the configured shares, one of:

- ``malformed``: bytes that break the contract (``not_json``, ``missing_field``,
  ``bad_timestamp``, ``wrong_type``); they carry no event id;
- ``duplicate``: the exact bytes of an event sent a little earlier (same id, same payload);
- ``late``: an event whose time is more than ``lateness`` behind the stream's event-time front
  (the newest event time sent so far), so a watermark of that delay drops it;
- ``out_of_order``: an event held back and sent after the next event of its source, so it is
  earlier than that source's previous event, but always within ``lateness`` of the front;
- ``valid``: the next event of the stream, unchanged.

Every message is labelled with its kind, so tests can check what the pipeline did with each.
The draws come from one generator seeded by ``seed``: the same stream and seed give the same
faults, message for message (a resumed replay can skip what it sent before by counting).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, NamedTuple

import orjson

from lakepulse.events import REQUIRED_FIELDS, Event
from lakepulse.settings import ProducerSettings
from lakepulse.sources import ReplayEvent

Kind = Literal["valid", "out_of_order", "late", "duplicate", "malformed"]
KINDS: Final[tuple[Kind, ...]] = ("valid", "out_of_order", "late", "duplicate", "malformed")
MalformedKind = Literal["not_json", "missing_field", "bad_timestamp", "wrong_type"]
MALFORMED_KINDS: Final[tuple[MalformedKind, ...]] = (
    "not_json",
    "missing_field",
    "bad_timestamp",
    "wrong_type",
)
# Kinds whose messages carry an event id (a malformed one may carry some id, but not an event).
ID_KINDS: Final[tuple[Kind, ...]] = ("valid", "out_of_order", "late", "duplicate")

# Duplicates repeat one of the last few hundred events: "a bit later", not hours later.
_RECENT: Final = 256
# A late event's id gets a sequence number from here on, so it can never equal the id of a
# regular event (sequence 0, or a few for NAB's repeated timestamps) at the same instant.
_LATE_SEQ_BASE: Final = 1_000_000
# Spellings of event_time that the contract refuses (none matches its pattern).
_BAD_TIMESTAMPS: Final = (
    lambda t: t.replace("T", " ").removesuffix("Z"),  # NAB's own spelling, no zone
    lambda t: t.removesuffix("Z") + "+00:00",  # UTC, but not spelled with Z
    lambda t: t[:16] + "Z",  # no seconds
    lambda t: "yesterday",
)


@dataclass(frozen=True)
class FaultConfig:
    """Shares of the messages sent (each in [0, 1), together below 1) and the lateness bound."""

    malformed: float = 0.0
    duplicates: float = 0.0
    late: float = 0.0
    out_of_order: float = 0.0
    lateness_s: float = 600.0

    def __post_init__(self) -> None:
        shares = {
            "malformed": self.malformed,
            "duplicates": self.duplicates,
            "late": self.late,
            "out_of_order": self.out_of_order,
        }
        for name, share in shares.items():
            if not 0.0 <= share < 1.0:
                raise ValueError(f"fault share {name} must be within [0, 1), got {share}")
        if sum(shares.values()) >= 1.0:
            raise ValueError(
                f"fault shares add up to {sum(shares.values())}: leave room for events"
            )
        if not self.lateness_s > 0:
            raise ValueError(f"lateness must be positive, got {self.lateness_s} s")

    @classmethod
    def from_settings(cls, producer: ProducerSettings) -> FaultConfig:
        """The shares and lateness configured in ``settings.producer``."""
        return cls(
            malformed=producer.malformed_share,
            duplicates=producer.duplicate_share,
            late=producer.late_share,
            out_of_order=producer.out_of_order_share,
            lateness_s=producer.lateness_seconds,
        )

    @property
    def enabled(self) -> bool:
        return (self.malformed + self.duplicates + self.late + self.out_of_order) > 0

    @property
    def extra_share(self) -> float:
        """Share of messages that add to the stream rather than carry its next event."""
        return self.malformed + self.duplicates

    def describe(self) -> str:
        """A short, stable spelling (part of a resumable replay's identity)."""
        return (
            f"malformed={self.malformed},duplicates={self.duplicates},late={self.late},"
            f"out_of_order={self.out_of_order},lateness_s={self.lateness_s}"
        )


class Message(NamedTuple):
    """One message to send, labelled with what it is."""

    offset: float  # seconds of replay time, for pacing
    kind: Kind
    key: bytes
    event: Event | None  # None for a malformed message
    raw: bytes | None = None  # the bytes of a malformed message
    detail: MalformedKind | None = None

    @property
    def value(self) -> bytes:
        if self.event is not None:
            return self.event.to_json_bytes()
        assert self.raw is not None
        return self.raw


@dataclass
class _State:
    rng: random.Random
    lateness: timedelta
    front: datetime | None = None  # newest event time sent (valid and out-of-order events)
    late_sent: int = 0

    def __post_init__(self) -> None:
        self.held: dict[str, ReplayEvent] = {}  # one out-of-order event per source, at most
        self.recent: deque[Event] = deque(maxlen=_RECENT)


def inject(events: Iterable[ReplayEvent], config: FaultConfig, seed: int = 0) -> Iterator[Message]:
    """The stream with faults injected at the configured shares, every message labelled."""
    rng = random.Random(f"lakepulse-faults-{seed}")
    state = _State(rng, timedelta(seconds=config.lateness_s))
    # One uniform draw per message, cut into the kinds' shares.
    malformed_to = config.malformed
    duplicate_to = malformed_to + config.duplicates
    late_to = duplicate_to + config.late
    out_of_order_to = late_to + config.out_of_order
    for item in events:
        event = item.event
        if state.held and (state.front is None or event.event_time > state.front):
            # Sending this event moves the front: a held event must go before it gets late.
            yield from _release_before(state, event.event_time, item.offset)
        # Each draw decides one message; malformed ones and duplicates come on top of the stream,
        # so draw again until one takes this event.
        while True:
            u = rng.random()
            if u < malformed_to:
                yield _malformed(item, rng)
            elif u < duplicate_to and state.recent:
                copy = state.recent[rng.randrange(len(state.recent))]
                yield Message(item.offset, "duplicate", copy.key, copy)
            else:
                break
        source = event.source
        if duplicate_to <= u < late_to:
            yield _late(state, item)
        elif late_to <= u < out_of_order_to and source not in state.held:
            state.held[source] = item
        else:
            yield _sent(state, Message(item.offset, "valid", event.key, event))
            held = state.held.pop(source, None)
            if held is not None:
                yield _sent(state, Message(item.offset, "out_of_order", held.event.key, held.event))
    # The stream ended: what is still held goes now (the front did not move past it).
    for held in sorted(state.held.values(), key=lambda h: h.event.event_time):
        yield _sent(state, Message(held.offset, "out_of_order", held.event.key, held.event))
    state.held.clear()


def _sent(state: _State, message: Message) -> Message:
    event = message.event
    assert event is not None
    if state.front is None or event.event_time > state.front:
        state.front = event.event_time
    state.recent.append(event)
    return message


def _release_before(state: _State, new_front: datetime, offset: float) -> Iterator[Message]:
    due = [
        source
        for source, held in state.held.items()
        if new_front - held.event.event_time >= state.lateness
    ]
    for source in due:
        held = state.held.pop(source)
        yield _sent(state, Message(offset, "out_of_order", held.event.key, held.event))


def _late(state: _State, item: ReplayEvent) -> Message:
    """This event, moved to between 1.1 and 2 times the lateness behind the front."""
    event = item.event
    front = event.event_time if state.front is None else max(state.front, event.event_time)
    behind = state.lateness * (1 + state.rng.uniform(0.1, 1.0))
    when = front - behind
    shift = event.event_time - when
    state.late_sent += 1
    late = Event.create(
        event.source,
        when,
        event.value,
        is_anomaly=event.is_anomaly,
        seq=_LATE_SEQ_BASE + state.late_sent,
        source_time=None if event.source_time is None else event.source_time - shift,
    )
    return Message(item.offset, "late", late.key, late)


def _malformed(item: ReplayEvent, rng: random.Random) -> Message:
    """Bytes derived from this event that break one rule of the contract."""
    event = item.event
    kind = MALFORMED_KINDS[rng.randrange(len(MALFORMED_KINDS))]
    payload = event.to_dict()
    if kind == "not_json":
        text = orjson.dumps(payload)
        raw = rng.choice(
            (
                text[: rng.randrange(1, len(text) - 1)],  # cut short: an unclosed object
                b"\xff\xfe" + text[2:],  # not UTF-8
                b"ERROR collector timeout " + event.key,  # a log line in the wrong place
            )
        )
    else:
        if kind == "missing_field":
            del payload[rng.choice(REQUIRED_FIELDS)]
        elif kind == "bad_timestamp":
            payload["event_time"] = rng.choice(_BAD_TIMESTAMPS)(payload["event_time"])
        else:
            # Types the Spark job's JSON reader refuses too (it reads a number as a string).
            field, bad = rng.choice(
                (
                    ("value", str(payload["value"])),
                    ("value", True),
                    ("schema_version", "1"),
                    ("is_anomaly", "yes"),
                )
            )
            payload[field] = bad
        raw = orjson.dumps(payload)
    return Message(item.offset, "malformed", event.key, None, raw, kind)
