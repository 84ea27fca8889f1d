"""The event contract (version 1): the one place where an event's shape is defined.

One JSON object per Kafka message, UTF-8, keyed by ``source``::

    {"schema_version": 1, "event_id": "<str>", "source": "<str>",
     "event_time": "2014-04-10T00:02:00Z", "value": 12.5, "is_anomaly": false,
     "source_time": "2014-04-10T00:02:00Z"}

``event_time`` is ISO-8601 UTC with a ``Z`` suffix, to the second or the millisecond.
``value`` may be null. ``is_anomaly`` is optional and only set by the synthetic generator.
``source_time`` is optional: a replay that moves old data onto today's clock (NAB rebased onto
the replay's start) keeps the original timestamp there, spelled like ``event_time``.

The contract is checked in as JSON Schema (``schemas/event/v1.json``, written from
:data:`EVENT_JSON_SCHEMA` by :func:`schema_file_text`); ``schemas/README.md`` says which
changes a major version allows.
``event_id`` is derived from the source and the event time (see :func:`event_id_for`), so a
replay of the same data produces the same ids and the lake can drop duplicates by id.

The Spark job builds its schema from :data:`EVENT_FIELDS` (or :func:`spark_ddl`) rather than
repeating it, so a change here is a change everywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
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
    FieldSpec("source_time", "string", "STRING", False, True, "original time of a rebased replay"),
)
FIELD_NAMES: Final = tuple(f.name for f in EVENT_FIELDS)
REQUIRED_FIELDS: Final = tuple(f.name for f in EVENT_FIELDS if f.required)

_TIME_PATTERN: Final = "^" + _EVENT_TIME_RE.pattern + "$"

# Extra properties stay allowed (no "additionalProperties": false): an older reader must accept
# events from a newer producer that adds an optional field.
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
        "event_time": {"type": "string", "pattern": _TIME_PATTERN},
        "value": {"type": ["number", "null"]},
        "is_anomaly": {"type": ["boolean", "null"]},
        "source_time": {"type": ["string", "null"], "pattern": _TIME_PATTERN},
    },
}

SCHEMA_DIR: Final = Path(__file__).resolve().parent / "schemas" / "event"
SCHEMA_FILE: Final = SCHEMA_DIR / f"v{SCHEMA_VERSION}.json"


def schema_file_text(schema: dict[str, Any] = EVENT_JSON_SCHEMA) -> str:
    """The checked-in spelling of a schema (2-space indent, key order kept, final newline).

    ``python -m lakepulse.events`` rewrites :data:`SCHEMA_FILE` with it after a contract change.
    """
    return json.dumps(schema, indent=2) + "\n"


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


def parse_event_time(text: str, field: str = "event_time") -> datetime:
    """Parse a contract timestamp into an aware UTC datetime; raises :class:`InvalidEvent`."""
    if not isinstance(text, str) or _EVENT_TIME_RE.fullmatch(text) is None:
        raise InvalidEvent(
            f"bad timestamp in '{field}': {text!r} is not ISO-8601 UTC like "
            "'2014-04-10T00:02:00Z' (seconds or milliseconds, Z suffix)"
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:  # well-formed but impossible, e.g. month 13
        raise InvalidEvent(f"bad timestamp in '{field}': {text!r}: {exc}") from None


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
    source_time: datetime | None = None  # aware, UTC; the original time of a rebased replay

    @classmethod
    def create(
        cls,
        source: str,
        event_time: datetime,
        value: float | None,
        *,
        is_anomaly: bool | None = None,
        seq: int = 0,
        source_time: datetime | None = None,
    ) -> Event:
        """An event with its deterministic id (times are cut to milliseconds, in UTC).

        The id follows ``event_time`` only: a rebased replay gets ids of its own.
        """
        when = _utc_millis(event_time)
        original = None if source_time is None else _utc_millis(source_time)
        return cls(
            event_id_for(source, when, seq), source, when, value, is_anomaly,
            source_time=original,
        )  # fmt: skip

    @property
    def key(self) -> bytes:
        """The Kafka message key: all events of one source go to one partition, in order."""
        return self.source.encode()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this event, all values JSON-native (times as strings)."""
        return self._payload()

    def to_json_bytes(self) -> bytes:
        # The hot path hands whole-second UTC times to orjson, which spells them as the
        # contract does ("2014-04-10T00:02:00Z") and faster than Python. NaN/inf become null.
        return orjson.dumps(self._payload(_orjson_time), option=orjson.OPT_UTC_Z)

    def _payload(self, spell: Callable[[datetime], Any] = format_event_time) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "source": self.source,
            "event_time": spell(self.event_time),
            "value": self.value,
        }
        if self.is_anomaly is not None:
            payload["is_anomaly"] = self.is_anomaly
        if self.source_time is not None:
            payload["source_time"] = spell(self.source_time)
        return payload

    @classmethod
    def from_json_bytes(cls, data: bytes | bytearray | memoryview | str | None) -> Event:
        return from_json_bytes(data)


def _utc_millis(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"event time {moment!r} has no time zone; pass an aware datetime")
    when = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    if when.microsecond % 1000:
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    return when


def _orjson_time(moment: datetime) -> datetime | str:
    """What orjson gets for a time: the datetime itself when orjson spells it as we do."""
    if moment.microsecond or moment.tzinfo is not UTC:
        return format_event_time(moment)
    return moment


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
    source_time = obj.get("source_time")
    if source_time is not None and not isinstance(source_time, str):
        raise _wrong_type("source_time", "string or null", source_time)
    event_time = parse_event_time(strings["event_time"])
    return Event(
        event_id=strings["event_id"],
        source=strings["source"],
        event_time=event_time,
        value=None if value is None else float(value),
        is_anomaly=is_anomaly,
        source_time=None if source_time is None else parse_event_time(source_time, "source_time"),
    )


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_file_text())
    print(f"wrote {SCHEMA_FILE}")
