"""The event contract (version 1): the one place where an event's shape is defined.

One JSON object per Kafka message, UTF-8, keyed by ``source``::

    {"schema_version": 1, "event_id": "<str>", "source": "<str>",
     "event_time": "2014-04-10T00:02:00Z", "value": 12.5, "is_anomaly": false}

``event_time`` is ISO-8601 UTC with a ``Z`` suffix, to the second or the millisecond.
``value`` may be null. ``is_anomaly`` is optional and only set by the synthetic generator.
``event_id`` is derived from the source and the event time (see :func:`event_id_for`), so a
replay of the same data produces the same ids and the lake can drop duplicates by id.

The Spark job builds its schema from :data:`EVENT_FIELDS` (or :func:`spark_ddl`) rather than
repeating it, so a change here is a change everywhere.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import orjson

SCHEMA_VERSION: Final = 1

# Fixed namespace: changing it would change every id and defeat deduplication of replays.
EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://lakepulse.dev/events/v1")
_NAMESPACE_BYTES: Final = EVENT_ID_NAMESPACE.bytes

# Second or millisecond precision, always UTC with "Z": one spelling per instant keeps ids stable.
_EVENT_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?Z")

# Spark's datetime pattern for the same strings (optional millisecond part).
SPARK_EVENT_TIME_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss[.SSS]X"


class FieldSpec(NamedTuple):
    name: str
    json_type: str  # JSON Schema type name
    spark_type: str  # Spark SQL DDL type
    required: bool
    nullable: bool
    description: str


EVENT_FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("schema_version", "integer", "INT", True, False, "contract version, always 1"),
    FieldSpec("event_id", "string", "STRING", True, False, "deterministic id (uuid5)"),
    FieldSpec("source", "string", "STRING", True, False, "series name, also the Kafka key"),
    FieldSpec("event_time", "string", "STRING", True, False, "ISO-8601 UTC with Z suffix"),
    FieldSpec("value", "number", "DOUBLE", True, True, "the measurement, null if missing"),
    FieldSpec("is_anomaly", "boolean", "BOOLEAN", False, True, "label, synthetic data only"),
)
FIELD_NAMES: Final = tuple(f.name for f in EVENT_FIELDS)
REQUIRED_FIELDS: Final = tuple(f.name for f in EVENT_FIELDS if f.required)

EVENT_JSON_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://lakepulse.dev/schemas/event-v1.json",
    "title": "Lakepulse event, version 1",
    "type": "object",
    "required": list(REQUIRED_FIELDS),
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "event_id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "event_time": {"type": "string", "pattern": "^" + _EVENT_TIME_RE.pattern + "$"},
        "value": {"type": ["number", "null"]},
        "is_anomaly": {"type": ["boolean", "null"]},
    },
}


def spark_ddl() -> str:
    """The event schema as a Spark DDL string, for ``from_json(col, spark_ddl())``.

    ``event_time`` stays a string here: parse it with :data:`SPARK_EVENT_TIME_FORMAT` so that a
    malformed time becomes a visible null instead of being silently coerced by the JSON reader.
    """
    return ", ".join(f"{f.name} {f.spark_type}" for f in EVENT_FIELDS)


class InvalidEvent(ValueError):
    """A message does not follow the event contract; ``reason`` says which rule it broke."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def format_event_time(moment: datetime) -> str:
    """The contract's spelling of an instant: UTC, ``Z``, seconds or milliseconds."""
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    if moment.tzinfo is UTC:  # the hot path: isoformat ends in "+00:00"
        return moment.isoformat(timespec=spec)[:-6] + "Z"
    if moment.tzinfo is None:
        raise ValueError(f"event time {moment!r} has no time zone; use an aware UTC datetime")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_event_time(text: str) -> datetime:
    """Parse a contract timestamp into an aware UTC datetime; raises :class:`InvalidEvent`."""
    if not isinstance(text, str) or _EVENT_TIME_RE.fullmatch(text) is None:
        raise InvalidEvent(
            f"bad timestamp in 'event_time': {text!r} is not ISO-8601 UTC like "
            "'2014-04-10T00:02:00Z' (seconds or milliseconds, Z suffix)"
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:  # well-formed but impossible, e.g. month 13
        raise InvalidEvent(f"bad timestamp in 'event_time': {text!r}: {exc}") from None


def event_id_for(source: str, event_time: datetime | str, seq: int = 0) -> str:
    """Deterministic event id: uuid5 over the source and the canonical event time.

    ``seq`` tells apart rows of one source that share a timestamp (NAB has a few, e.g. a
    repeated hour at a clock change); the first occurrence keeps the plain id.
    """
    when = event_time if isinstance(event_time, datetime) else parse_event_time(event_time)
    name = f"{source}|{format_event_time(when)}"
    if seq:
        name += f"|{seq}"
    return _uuid5(name)


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(EVENT_ID_NAMESPACE, name))`` at a third of the cost (producer hot path)."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    source: str
    event_time: datetime  # aware, UTC
    value: float | None
    is_anomaly: bool | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def create(
        cls,
        source: str,
        event_time: datetime,
        value: float | None,
        *,
        is_anomaly: bool | None = None,
        seq: int = 0,
    ) -> Event:
        """An event with its deterministic id (the time is cut to milliseconds, in UTC)."""
        if event_time.tzinfo is None:
            raise ValueError(f"event time {event_time!r} has no time zone; pass an aware datetime")
        when = event_time if event_time.tzinfo is UTC else event_time.astimezone(UTC)
        if when.microsecond % 1000:
            when = when.replace(microsecond=when.microsecond // 1000 * 1000)
        return cls(event_id_for(source, when, seq), source, when, value, is_anomaly)

    @property
    def key(self) -> bytes:
        """The Kafka message key: all events of one source go to one partition, in order."""
        return self.source.encode()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this event, all values JSON-native (the time as a string)."""
        return self._payload(format_event_time(self.event_time))

    def to_json_bytes(self) -> bytes:
        when: datetime | str = self.event_time
        if when.microsecond or when.tzinfo is not UTC:  # type: ignore[union-attr]
            when = format_event_time(self.event_time)
        # else the hot path: orjson spells a whole-second UTC time as the contract does
        # ("2014-04-10T00:02:00Z") and faster than Python. NaN/inf values are written as null.
        return orjson.dumps(self._payload(when), option=orjson.OPT_UTC_Z)

    def _payload(self, event_time: datetime | str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "source": self.source,
            "event_time": event_time,
            "value": self.value,
        }
        if self.is_anomaly is not None:
            payload["is_anomaly"] = self.is_anomaly
        return payload

    @classmethod
    def from_json_bytes(cls, data: bytes | bytearray | memoryview | str | None) -> Event:
        return from_json_bytes(data)


def _field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise InvalidEvent(f"missing field '{name}'")
    return obj[name]


def _wrong_type(name: str, expected: str, got: Any) -> InvalidEvent:
    return InvalidEvent(f"wrong type for '{name}': expected {expected}, got {type(got).__name__}")


def from_json_bytes(data: bytes | bytearray | memoryview | str | None) -> Event:
    """Decode and validate one message; raises :class:`InvalidEvent` naming the problem.

    Unknown extra fields are ignored, so a newer producer adding an optional field does not
    break older readers.
    """
    if data is None or len(data) == 0:
        raise InvalidEvent("bad JSON: empty message")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"bad JSON: expected an object, got {type(obj).__name__}")

    version = _field(obj, "schema_version")
    if type(version) is not int:
        raise _wrong_type("schema_version", "integer", version)
    if version != SCHEMA_VERSION:
        raise InvalidEvent(f"unsupported schema_version {version} (this reader knows 1)")
    strings = {}
    for name in ("event_id", "source", "event_time"):
        raw = _field(obj, name)
        if not isinstance(raw, str):
            raise _wrong_type(name, "string", raw)
        if not raw:
            raise InvalidEvent(f"empty string in '{name}'")
        strings[name] = raw
    value = _field(obj, "value")
    # bool is an int subclass in Python but not a number in the contract.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _wrong_type("value", "number or null", value)
    is_anomaly = obj.get("is_anomaly")
    if is_anomaly is not None and not isinstance(is_anomaly, bool):
        raise _wrong_type("is_anomaly", "boolean or null", is_anomaly)
    return Event(
        event_id=strings["event_id"],
        source=strings["source"],
        event_time=parse_event_time(strings["event_time"]),
        value=None if value is None else float(value),
        is_anomaly=is_anomaly,
    )
