"""The event contract, the NAB source, the synthetic generator and the producer's pacing.

None of these need Kafka: they check what the producer would send, not the sending.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from lakepulse import producer
from lakepulse.events import (
    EVENT_FIELDS,
    EVENT_ID_NAMESPACE,
    EVENT_JSON_SCHEMA,
    FIELD_NAMES,
    SCHEMA_DIR,
    SCHEMA_FILE,
    Event,
    InvalidEvent,
    event_id_for,
    format_event_time,
    from_json_bytes,
    schema_file_text,
    spark_ddl,
)
from lakepulse.services import kafka as kafka_service
from lakepulse.services import stack
from lakepulse.settings import PathSettings, Settings, load_settings
from lakepulse.sources import ReplayEvent, nab
from lakepulse.sources.faults import FaultConfig, inject
from lakepulse.sources.synthetic import SyntheticGenerator, step_for_rate

pytestmark = pytest.mark.streaming

REPO = Path(__file__).resolve().parents[1]
# The real row count of the corpus. NAB's README says 365,551: that is `wc -l` minus headers,
# which misses the last row of the 7 files that do not end in a newline.
NAB_ROWS = 365_558


@pytest.fixture(scope="module")
def nab_dir() -> Path:
    path = REPO.parent / "shared" / "data" / "nab"
    if not (path / "data").is_dir():
        pytest.skip(f"NAB corpus not found at {path}")
    return path


@pytest.fixture(scope="module")
def full_replay(nab_dir: Path) -> list[tuple[float, str, datetime, str]]:
    """The whole corpus replayed once: (offset, source, event time, id) per event."""
    return [
        (item.offset, item.event.source, item.event.event_time, item.event.event_id)
        for item in nab.replay(nab_dir)
    ]


def _event(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "schema_version": 1,
        "event_id": "e-1",
        "source": "realTweets/Twitter_volume_AAPL",
        "event_time": "2014-04-10T00:02:00Z",
        "value": 1.5,
    }
    payload.update(overrides)
    return payload


# --- the contract -------------------------------------------------------------------------------


def test_round_trip_keeps_every_field() -> None:
    moment = datetime(2014, 4, 10, 0, 2, tzinfo=UTC)
    cases = [
        Event.create("a/b", moment, 12.25),
        Event.create("a/b", moment, None),
        Event.create(
            "synthetic/cpu_00", moment + timedelta(milliseconds=250), 3.0, is_anomaly=True
        ),
        Event.create("synthetic/cpu_00", moment, -1e300, is_anomaly=False),
    ]
    for event in cases:
        data = event.to_json_bytes()
        assert from_json_bytes(data) == event
        assert Event.from_json_bytes(data) == event


def test_json_follows_the_contract_spelling() -> None:
    event = Event.create("a/b", datetime(2014, 4, 10, 0, 2, tzinfo=UTC), 7.0)
    payload = orjson.loads(event.to_json_bytes())
    assert list(payload) == ["schema_version", "event_id", "source", "event_time", "value"]
    assert payload["schema_version"] == 1
    assert payload["event_time"] == "2014-04-10T00:02:00Z"
    assert event.key == b"a/b"

    labelled = Event.create(
        "s/x", datetime(2014, 4, 10, 0, 2, 0, 123_456, tzinfo=UTC), 1.0, is_anomaly=True
    )
    payload = orjson.loads(labelled.to_json_bytes())
    assert payload["event_time"] == "2014-04-10T00:02:00.123Z"  # cut to milliseconds
    assert payload["is_anomaly"] is True
    # A non-UTC time is stored and written as the same instant in UTC.
    shifted = datetime(2014, 4, 10, 2, 2, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert orjson.loads(Event.create("a/b", shifted, 1.0).to_json_bytes())["event_time"] == (
        "2014-04-10T02:02:00Z"
    )


def test_nan_value_is_written_as_null() -> None:
    event = Event("id", "a/b", datetime(2014, 1, 1, tzinfo=UTC), float("nan"))
    assert orjson.loads(event.to_json_bytes())["value"] is None


def test_schema_exports_agree_with_the_dataclass() -> None:
    assert tuple(f.name for f in EVENT_FIELDS) == FIELD_NAMES
    assert set(FIELD_NAMES) == {f.name for f in dataclasses.fields(Event)}
    assert set(EVENT_JSON_SCHEMA["properties"]) == set(FIELD_NAMES)
    assert EVENT_JSON_SCHEMA["required"] == [
        "schema_version",
        "event_id",
        "source",
        "event_time",
        "value",
    ]
    assert spark_ddl() == (
        "schema_version INT, event_id STRING, source STRING, event_time STRING, value DOUBLE, "
        "is_anomaly BOOLEAN, source_time STRING"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "bad JSON: empty message"),
        (None, "bad JSON: empty message"),
        (b"{not json", "bad JSON"),
        (b"\xff\xfe{}", "bad JSON"),
        (b"[1, 2]", "bad JSON: expected an object, got list"),
        (b'"text"', "bad JSON: expected an object, got str"),
    ],
)
def test_unparseable_messages_are_invalid(data: bytes | None, expected: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        from_json_bytes(data)
    assert info.value.reason.startswith(expected)
    assert str(info.value) == info.value.reason


@pytest.mark.parametrize("name", ["schema_version", "event_id", "source", "event_time", "value"])
def test_missing_field_is_named(name: str) -> None:
    payload = _event()
    del payload[name]
    with pytest.raises(InvalidEvent, match=f"missing field '{name}'"):
        from_json_bytes(orjson.dumps(payload))


def test_optional_label_may_be_absent_and_unknown_fields_are_ignored() -> None:
    event = from_json_bytes(orjson.dumps(_event(extra="from a newer producer")))
    assert event.is_anomaly is None
    assert event.value == 1.5
    assert from_json_bytes(orjson.dumps(_event(value=3))).value == 3.0  # JSON ints are numbers


@pytest.mark.parametrize(
    ("field", "bad", "expected"),
    [
        ("schema_version", "1", "wrong type for 'schema_version': expected integer, got str"),
        ("schema_version", 2, "unsupported schema_version 2"),
        ("event_id", 17, "wrong type for 'event_id': expected string, got int"),
        ("event_id", "", "empty string in 'event_id'"),
        ("source", None, "wrong type for 'source': expected string, got NoneType"),
        ("event_time", 1397088120, "wrong type for 'event_time': expected string, got int"),
        ("value", "1.5", "wrong type for 'value': expected number or null, got str"),
        ("value", True, "wrong type for 'value': expected number or null, got bool"),
        ("value", [1.5], "wrong type for 'value': expected number or null, got list"),
        ("is_anomaly", "yes", "wrong type for 'is_anomaly': expected boolean or null, got str"),
        ("is_anomaly", 1, "wrong type for 'is_anomaly': expected boolean or null, got int"),
    ],
)
def test_wrong_type_is_named(field: str, bad: object, expected: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        from_json_bytes(orjson.dumps(_event(**{field: bad})))
    assert info.value.reason.startswith(expected)


@pytest.mark.parametrize(
    "stamp",
    [
        "2014-04-10 00:02:00",  # NAB's own spelling: no T, no zone
        "2014-04-10T00:02:00",  # no zone
        "2014-04-10T00:02:00+00:00",  # UTC, but not spelled with Z
        "2014-04-10T02:02:00+02:00",
        "2014-04-10T00:02Z",  # no seconds
        "2014-04-10T00:02:00.1Z",  # neither seconds nor milliseconds
        "2014-04-10T00:02:00.123456Z",
        "2014-13-10T00:02:00Z",  # month 13
        "2014-02-30T00:02:00Z",
        "yesterday",
    ],
)
def test_bad_timestamp_is_invalid(stamp: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        from_json_bytes(orjson.dumps(_event(event_time=stamp)))
    assert info.value.reason.startswith("bad timestamp in 'event_time'")
    assert repr(stamp) in info.value.reason


def test_invalid_event_is_a_value_error() -> None:
    assert issubclass(InvalidEvent, ValueError)


# --- event ids ----------------------------------------------------------------------------------


def test_event_ids_are_deterministic_uuid5() -> None:
    moment = datetime(2014, 4, 1, tzinfo=UTC)
    first = event_id_for("artificialNoAnomaly/art_daily_no_noise", moment)
    # Pinned: a change here would give replayed data new ids and defeat deduplication.
    assert first == "6e66a7cf-a24c-5eaf-a41a-d7014f1215a8"
    assert first == str(
        uuid.uuid5(
            EVENT_ID_NAMESPACE, "artificialNoAnomaly/art_daily_no_noise|2014-04-01T00:00:00Z"
        )
    )
    assert uuid.UUID(first).version == 5
    assert event_id_for("artificialNoAnomaly/art_daily_no_noise", "2014-04-01T00:00:00Z") == first
    assert event_id_for("artificialNoAnomaly/art_daily_no_noise", moment) == first


def test_event_ids_differ_by_source_time_and_sequence() -> None:
    moment = datetime(2014, 4, 1, tzinfo=UTC)
    ids = {
        event_id_for("a/b", moment),
        event_id_for("a/c", moment),
        event_id_for("a/b", moment + timedelta(seconds=1)),
        event_id_for("a/b", moment + timedelta(milliseconds=1)),
        event_id_for("a/b", moment, seq=1),
        event_id_for("a/b", moment, seq=2),
    }
    assert len(ids) == 6
    # The same instant in another zone is the same event.
    other_zone = moment.astimezone(timezone(timedelta(hours=-5)))
    assert event_id_for("a/b", other_zone) == event_id_for("a/b", moment)
    assert Event.create("a/b", moment, 1.0).event_id == Event.create("a/b", moment, 2.0).event_id


# --- NAB ----------------------------------------------------------------------------------------


def test_discovery_finds_the_58_series(nab_dir: Path) -> None:
    series = nab.discover(nab_dir)
    assert len(series) == 58
    assert [s.name for s in series] == sorted(s.name for s in series)
    assert Counter(s.category for s in series) == {
        "artificialNoAnomaly": 5,
        "artificialWithAnomaly": 6,
        "realAWSCloudwatch": 17,
        "realAdExchange": 6,
        "realKnownCause": 7,
        "realTraffic": 7,
        "realTweets": 10,
    }
    assert "realKnownCause/nyc_taxi" in {s.name for s in series}
    assert all(not s.name.endswith(".csv") and s.name.count("/") == 1 for s in series)


def test_every_row_is_read_once(nab_dir: Path) -> None:
    series = nab.discover(nab_dir)
    # Independent count: non-empty lines minus the header, straight from the files.
    raw = sum(
        sum(1 for line in s.path.read_text().splitlines() if line.strip()) - 1 for s in series
    )
    per_file = {s.name: sum(1 for _ in nab.read_rows(s)) for s in series}
    assert raw == sum(per_file.values()) == NAB_ROWS
    assert per_file["realKnownCause/nyc_taxi"] == 10_320
    first_moment, first_value = next(nab.read_rows(nab.select(series, "nyc_taxi")[0]))
    assert first_moment == datetime(2014, 7, 1, tzinfo=UTC)
    assert first_value == 10844.0


def test_replay_has_every_row_with_unique_ids(
    full_replay: list[tuple[float, str, datetime, str]], nab_dir: Path
) -> None:
    assert len(full_replay) == NAB_ROWS
    ids = {row[3] for row in full_replay}
    # Unique although a few series repeat a timestamp (clock changes): the repeats get seq > 0.
    assert len(ids) == NAB_ROWS
    # The same ids as reading the files one by one, so both paths dedupe alike.
    by_file = {e.event_id for s in nab.discover(nab_dir) for e in nab.read_events(s)}
    assert by_file == ids


def test_replay_is_ordered_by_offset_from_each_series_start(
    full_replay: list[tuple[float, str, datetime, str]],
) -> None:
    offsets = [row[0] for row in full_replay]
    assert offsets == sorted(offsets)
    first_time: dict[str, datetime] = {}
    last_time: dict[str, datetime] = {}
    for offset, source, moment, _ in full_replay:
        start = first_time.setdefault(source, moment)
        assert offset == (moment - start).total_seconds()
        assert moment >= last_time.get(source, moment)  # each series in time order
        last_time[source] = moment
    assert len(first_time) == 58
    # Every series starts at replay time zero: the first 58 events are the 58 first rows.
    assert {row[1] for row in full_replay[:58]} == set(first_time)
    assert all(row[0] == 0 for row in full_replay[:58])
    # Sources interleave from the start rather than one series after another.
    assert len({row[1] for row in full_replay[:5_000]}) == 58


def test_selection_by_name_category_and_bare_name(nab_dir: Path) -> None:
    series = nab.discover(nab_dir)
    assert nab.select(series, None) == series
    assert nab.select(series, " ") == series
    picked = nab.select(
        series, "realTraffic, Twitter_volume_AAPL,realTweets/Twitter_volume_AAPL.csv"
    )
    assert [s.name for s in picked] == [
        "realTraffic/TravelTime_387",
        "realTraffic/TravelTime_451",
        "realTraffic/occupancy_6005",
        "realTraffic/occupancy_t4013",
        "realTraffic/speed_6005",
        "realTraffic/speed_7578",
        "realTraffic/speed_t4013",
        "realTweets/Twitter_volume_AAPL",
    ]
    assert nab.select(series, ["realKnownCause/nyc_taxi"]) == nab.select(series, "nyc_taxi")
    replay = nab.replay(nab_dir, "realKnownCause/nyc_taxi,realTraffic/speed_6005")
    assert replay.sources == ["realKnownCause/nyc_taxi", "realTraffic/speed_6005"]
    assert replay.total == sum(1 for _ in replay)
    assert {item.event.source for item in replay} == set(replay.sources)


def test_unknown_selection_lists_valid_names(nab_dir: Path) -> None:
    series = nab.discover(nab_dir)
    with pytest.raises(nab.UnknownSource) as info:
        nab.select(series, "realTweets,Twitter_volume_APPL")
    message = str(info.value)
    assert "'Twitter_volume_APPL'" in message
    assert "did you mean realTweets/Twitter_volume_AAPL" in message
    assert "artificialNoAnomaly/art_daily_no_noise" in message  # a few valid names
    assert "realKnownCause" in message  # and the categories
    assert isinstance(info.value, ValueError)


def test_missing_corpus_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(nab.NabDataMissing) as info:
        nab.discover(tmp_path)
    assert "numenta/NAB" in str(info.value) and "MIT" in str(info.value)


def test_malformed_csv_row_names_the_line(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "cat"
    folder.mkdir(parents=True)
    (folder / "s.csv").write_text("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05,x\n")
    (series,) = nab.discover(tmp_path)
    with pytest.raises(nab.NabFormatError, match=r"s\.csv:3: bad row"):
        list(nab.read_rows(series))


def test_repeated_timestamps_get_distinct_ids(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "cat"
    folder.mkdir(parents=True)
    rows = ["00:00:00,1", "00:05:00,2", "00:05:00,3", "00:00:00,4", "00:10:00,"]
    (folder / "s.csv").write_text(
        "timestamp,value\r\n" + "".join(f"2014-01-01 {r}\r\n" for r in rows)
    )
    events = [item.event for item in nab.replay(tmp_path)]
    # Sorted by time (stable: repeats keep file order); the missing value is null.
    assert [e.value for e in events] == [1.0, 4.0, 2.0, 3.0, None]
    assert len({e.event_id for e in events}) == 5
    assert {e.event_id for e in events} == {
        e.event_id for e in nab.read_events(*nab.discover(tmp_path))
    }
    assert events[0].event_id == event_id_for("cat/s", "2014-01-01T00:00:00Z")


# --- synthetic generator ------------------------------------------------------------------------


def _synthetic(days: int, **kwargs: object) -> dict[str, list[Event]]:
    generator = SyntheticGenerator(**kwargs)  # type: ignore[arg-type]
    by_source: dict[str, list[Event]] = {}
    for item in itertools.islice(generator, generator.n_sources * 288 * days):
        by_source.setdefault(item.event.source, []).append(item.event)
    return by_source


def _autocorrelation(values: list[float], lag: int) -> float:
    mean = statistics.fmean(values)
    var = sum((v - mean) ** 2 for v in values)
    return (
        sum((values[i] - mean) * (values[i + lag] - mean) for i in range(len(values) - lag)) / var
    )


@pytest.fixture(scope="module")
def four_weeks() -> dict[str, list[Event]]:
    return _synthetic(28, n_sources=8, seed=7)


def test_synthetic_has_daily_seasonality(four_weeks: dict[str, list[Event]]) -> None:
    assert len(four_weeks) == 8
    for source, events in four_weeks.items():
        values = [e.value for e in events if e.value is not None]
        daily, half_day = _autocorrelation(values, 288), _autocorrelation(values, 144)
        assert daily > 0.25, (source, daily)  # a day apart: alike
        assert half_day < daily - 0.3, (source, half_day)  # half a day apart: opposite


def test_synthetic_has_weekly_seasonality(four_weeks: dict[str, list[Event]]) -> None:
    for source in ("synthetic/request_rate_01", "synthetic/cpu_utilization_00"):
        normal = [e for e in four_weeks[source] if e.value is not None and not e.is_anomaly]
        weekday = statistics.fmean(e.value for e in normal if e.event_time.weekday() < 5)  # type: ignore[misc]
        weekend = statistics.fmean(e.value for e in normal if e.event_time.weekday() >= 5)  # type: ignore[misc]
        assert weekend < 0.9 * weekday, source


def test_synthetic_labels_injected_anomalies(four_weeks: dict[str, list[Event]]) -> None:
    events = [e for series in four_weeks.values() for e in series]
    assert all(isinstance(e.is_anomaly, bool) for e in events)  # every event is labelled
    labelled = sum(e.is_anomaly for e in events)
    assert 0.002 * len(events) < labelled < 0.15 * len(events)
    assert sum(1 for series in four_weeks.values() if any(e.is_anomaly for e in series)) >= 6
    # The anomalies are visible: the most extreme values of a series are mostly labelled.
    for series in four_weeks.values():
        if not any(e.is_anomaly for e in series):
            continue
        ranked = sorted((e for e in series if e.value is not None), key=lambda e: e.value)  # type: ignore[arg-type, return-value]
        assert any(e.is_anomaly for e in ranked[:3] + ranked[-3:])


def test_synthetic_timing_and_names() -> None:
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    items = list(itertools.islice(SyntheticGenerator(3, start=start, step=timedelta(minutes=1)), 9))
    assert [i.event.source for i in items[:3]] == [
        "synthetic/cpu_utilization_00",
        "synthetic/request_rate_01",
        "synthetic/latency_ms_02",
    ]
    assert [i.offset for i in items] == [0, 0, 0, 60, 60, 60, 120, 120, 120]
    assert [i.event.event_time for i in items[::3]] == [
        start,
        start + timedelta(minutes=1),
        start + timedelta(minutes=2),
    ]
    assert all(isinstance(i, ReplayEvent) for i in items)


def test_synthetic_is_deterministic_with_a_seed() -> None:
    def take(n_sources: int, seed: int) -> list[tuple[str, str, float | None, bool | None]]:
        generator = SyntheticGenerator(n_sources, seed=seed)
        return [
            (i.event.event_id, i.event.source, i.event.value, i.event.is_anomaly)
            for i in itertools.islice(generator, 1_000 * n_sources)
        ]

    first = take(4, seed=42)
    assert take(4, seed=42) == first
    other_seed = take(4, seed=43)
    assert [r[2] for r in other_seed] != [r[2] for r in first]
    # Ids depend on source and time only; values on the seed.
    assert [r[0] for r in other_seed] == [r[0] for r in first]
    # Adding sources leaves the existing ones unchanged.
    wider = [r for r in take(6, seed=42) if r[1] in {r[1] for r in first}]
    assert wider[: len(first)] == first


def test_synthetic_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_sources"):
        SyntheticGenerator(0)
    with pytest.raises(ValueError, match="time zone"):
        SyntheticGenerator(1, start=datetime(2024, 1, 1))


# --- producer, without Kafka --------------------------------------------------------------------


def test_speedup_resolution() -> None:
    settings = Settings()
    assert producer.resolve_speedup(None, settings) == settings.producer.speedup
    assert producer.resolve_speedup(0, settings) == 0
    assert producer.resolve_speedup(float("inf"), settings) == 0
    assert producer.resolve_speedup(60, settings) == 60
    with pytest.raises(ValueError, match="speedup"):
        producer.resolve_speedup(-1, settings)


class _FakeClock:
    """Stands in for time.monotonic and for the producer's poll(), which is where it waits."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.polls = 0

    def monotonic(self) -> float:
        return self.now

    def poll(self, timeout: float) -> int:
        self.polls += 1
        self.now += timeout
        return 0


def test_pacing_sends_each_event_at_offset_over_speedup(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(producer.time, "monotonic", clock.monotonic)
    moment = datetime(2014, 1, 1, tzinfo=UTC)
    events = [
        ReplayEvent(offset, Event.create("a/b", moment + timedelta(seconds=offset), 1.0))
        for offset in (0, 0, 300, 600, 1_500)
    ]
    sent_at = [
        clock.now - 1_000.0
        for _ in producer._paced(events, 300.0, clock, producer._StopFlag())  # type: ignore[arg-type]
    ]
    assert sent_at == pytest.approx([0, 0, 1, 2, 5], abs=1e-9)

    clock.polls = 0
    flat_out = list(producer._paced(events, 0.0, clock, producer._StopFlag()))  # type: ignore[arg-type]
    assert len(flat_out) == 5 and clock.polls == 0


def test_pacing_stops_on_sigterm_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(producer.time, "monotonic", clock.monotonic)
    stop = producer._StopFlag()
    moment = datetime(2014, 1, 1, tzinfo=UTC)
    events = (ReplayEvent(i * 60.0, Event.create("a/b", moment, 1.0)) for i in range(100))
    seen = 0
    for _ in producer._paced(events, 60.0, clock, stop):  # type: ignore[arg-type]
        seen += 1
        if seen == 3:
            stop.stopped = True
    assert seen == 3


def test_falls_back_to_synthetic_without_nab(tmp_path: Path) -> None:
    settings = Settings(paths=PathSettings(nab_dir=tmp_path / "nowhere"))
    start = datetime(2024, 6, 1, tzinfo=UTC)
    mode, events, total = producer.open_events(settings, None, False, 1, start)
    assert mode == "synthetic" and total is None
    first = list(itertools.islice(events, settings.producer.synthetic_sources))
    assert len({item.event.source for item in first}) == settings.producer.synthetic_sources
    assert all(item.event.event_time == start for item in first)


def test_nab_mode_knows_its_size(nab_dir: Path) -> None:
    settings = Settings(paths=PathSettings(nab_dir=nab_dir))
    mode, _, total = producer.open_events(settings, "realTweets", False, 0, None)
    assert mode == "nab"
    assert total == 158_631  # the 10 Twitter series


# --- the optional source_time -------------------------------------------------------------------


def test_source_time_round_trips_and_is_optional() -> None:
    rebased = datetime(2026, 11, 1, 12, 0, 5, tzinfo=UTC)
    original = datetime(2014, 4, 10, 0, 2, 0, 250_000, tzinfo=UTC)
    event = Event.create("a/b", rebased, 1.0, source_time=original)
    payload = orjson.loads(event.to_json_bytes())
    assert payload["event_time"] == "2026-11-01T12:00:05Z"
    assert payload["source_time"] == "2014-04-10T00:02:00.250Z"
    assert from_json_bytes(event.to_json_bytes()) == event
    assert event.to_dict() == payload
    # The id follows the event time only: the original time does not change it.
    assert event.event_id == Event.create("a/b", rebased, 1.0).event_id
    assert "source_time" not in orjson.loads(Event.create("a/b", rebased, 1.0).to_json_bytes())
    assert from_json_bytes(orjson.dumps(_event(source_time=None))).source_time is None


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (1397088120, "wrong type for 'source_time': expected string or null, got int"),
        ("2014-04-10 00:02:00", "bad timestamp in 'source_time'"),
        ("2014-02-30T00:02:00Z", "bad timestamp in 'source_time'"),
    ],
)
def test_bad_source_time_is_named(bad: object, expected: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        from_json_bytes(orjson.dumps(_event(source_time=bad)))
    assert info.value.reason.startswith(expected)


# --- the checked-in JSON Schema and its compatibility rule --------------------------------------

# Annotations may change within a version; everything else about a published property may not.
_ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})


def _compatibility_problems(baseline: dict, current: dict) -> list[str]:
    """How ``current`` breaks the rule of schemas/README.md against ``baseline`` ([] if not)."""
    problems = []
    base_props, props = baseline["properties"], current["properties"]
    for name, spec in base_props.items():
        if name not in props:
            problems.append(f"property {name!r} removed")
            continue

        def strip(schema: dict) -> dict:
            return {k: v for k, v in schema.items() if k not in _ANNOTATIONS}

        if strip(props[name]) != strip(spec):
            problems.append(f"property {name!r} changed: {strip(spec)} -> {strip(props[name])}")
    if current["required"] != baseline["required"]:
        problems.append(f"required changed: {baseline['required']} -> {current['required']}")
    problems += [
        f"new property {name!r} is required"
        for name in props
        if name not in base_props and name in current["required"]
    ]
    top = {k for k in baseline.keys() | current.keys() if k not in {"properties", "required"}}
    problems += [
        f"top-level {key!r} changed"
        for key in sorted(top - _ANNOTATIONS)
        if baseline.get(key) != current.get(key)
    ]
    return problems


def _schema(name: str) -> dict:
    return orjson.loads((SCHEMA_DIR / name).read_bytes())


def test_checked_in_schema_is_what_the_code_defines() -> None:
    assert SCHEMA_FILE == REPO / "plugins" / "lakepulse" / "schemas" / "event" / "v1.json"
    assert SCHEMA_FILE.read_text() == schema_file_text(), (
        "schemas/event/v1.json is stale: run `python -m lakepulse.events`"
    )
    Draft202012Validator.check_schema(_schema("v1.json"))
    assert _schema("v1.json")["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(_schema("v1.json")["properties"]) == set(FIELD_NAMES)
    optional = {f.name for f in EVENT_FIELDS if not f.required}
    assert {"is_anomaly", "source_time"} <= optional


def test_v1_only_adds_optional_properties_to_the_baseline() -> None:
    baseline, current = _schema("v1.baseline.json"), _schema("v1.json")
    assert _compatibility_problems(baseline, current) == []
    assert set(current["properties"]) - set(baseline["properties"]) == {"source_time"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["properties"].pop("is_anomaly"), "property 'is_anomaly' removed"),
        (lambda s: s["properties"]["value"].update(type="number"), "property 'value' changed"),
        (lambda s: s["properties"]["event_id"].pop("minLength"), "property 'event_id' changed"),
        (lambda s: s["required"].append("is_anomaly"), "required changed"),
        (lambda s: s["required"].remove("value"), "required changed"),
        (lambda s: s.update(additionalProperties=False), "top-level 'additionalProperties'"),
        (
            lambda s: (s["properties"].update(x={"type": "string"}), s["required"].append("x")),
            "new property 'x' is required",
        ),
    ],
)
def test_the_compatibility_check_catches_breaking_changes(change: Any, problem: str) -> None:
    current = _schema("v1.json")
    assert _compatibility_problems(_schema("v1.baseline.json"), current) == []
    change(current)
    problems = _compatibility_problems(_schema("v1.baseline.json"), current)
    assert any(p.startswith(problem) for p in problems), problems
    # Annotations and new optional properties are fine.
    relaxed = _schema("v1.json")
    relaxed["properties"]["value"]["description"] = "the measurement"
    relaxed["properties"]["unit"] = {"type": ["string", "null"]}
    assert _compatibility_problems(_schema("v1.baseline.json"), relaxed) == []


def test_json_schema_and_python_reader_agree_on_generated_messages() -> None:
    validator = Draft202012Validator(_schema("v1.json"))
    faults = FaultConfig(malformed=0.3, duplicates=0.05, late=0.05, out_of_order=0.05)
    generator = SyntheticGenerator(4, seed=2, step=timedelta(seconds=10))
    for message in itertools.islice(inject(generator, faults, seed=2), 3_000):
        if message.kind != "malformed":
            assert validator.is_valid(orjson.loads(message.value))
            assert from_json_bytes(message.value) == message.event
            continue
        with pytest.raises(InvalidEvent):
            from_json_bytes(message.value)
        if message.detail != "not_json":
            assert not validator.is_valid(orjson.loads(message.value)), message.value
    rebased = Event.create(
        "a/b", datetime(2026, 1, 1, tzinfo=UTC), 1.0, source_time=datetime(2014, 1, 1, tzinfo=UTC)
    )
    assert validator.is_valid(rebased.to_dict())
    assert not validator.is_valid({**rebased.to_dict(), "source_time": "2014-01-01 00:00:00"})


# --- fault injection ----------------------------------------------------------------------------

SHARES = FaultConfig(malformed=0.1, duplicates=0.02, late=0.01, out_of_order=0.05)


def _faulty(n: int, config: FaultConfig = SHARES, seed: int = 1, sources: int = 50) -> list:
    generator = SyntheticGenerator(
        sources, seed=seed, step=timedelta(milliseconds=10), start=datetime(2026, 1, 1, tzinfo=UTC)
    )
    return list(itertools.islice(inject(generator, config, seed=seed), n))


@pytest.fixture(scope="module")
def faulty() -> list:
    return _faulty(100_000)


def test_fault_shares_follow_the_configuration(faulty: list) -> None:
    counts = Counter(m.kind for m in faulty)
    shares = {kind: counts[kind] / len(faulty) for kind in counts}
    assert shares["malformed"] == pytest.approx(0.10, abs=0.004)
    assert shares["duplicate"] == pytest.approx(0.02, abs=0.002)
    assert shares["late"] == pytest.approx(0.01, abs=0.0015)
    # A source holds one event back at a time, so a few draws fall back to a plain send.
    assert shares["out_of_order"] == pytest.approx(0.05, abs=0.005)
    assert shares["valid"] == pytest.approx(0.82, abs=0.01)
    details = Counter(m.detail for m in faulty if m.kind == "malformed")
    assert set(details) == {"not_json", "missing_field", "bad_timestamp", "wrong_type"}
    assert min(details.values()) > 0.2 * counts["malformed"]
    assert all((m.detail is None) == (m.kind != "malformed") for m in faulty)


def test_faults_are_deterministic_for_a_seed() -> None:
    def fingerprint(messages: list) -> list:
        return [(m.kind, m.detail, m.key, m.value) for m in messages]

    first = fingerprint(_faulty(5_000, seed=4))
    assert fingerprint(_faulty(5_000, seed=4)) == first
    assert fingerprint(_faulty(5_000, seed=5)) != first
    # Skipping what was sent reproduces the rest: how a resumed replay continues.
    assert fingerprint(_faulty(5_000, seed=4)[3_000:]) == first[3_000:]


def test_no_faults_means_the_stream_unchanged() -> None:
    generator = SyntheticGenerator(3, seed=1)
    plain = [item.event for item in itertools.islice(generator, 300)]
    messages = list(itertools.islice(inject(SyntheticGenerator(3, seed=1), FaultConfig()), 300))
    assert {m.kind for m in messages} == {"valid"}
    assert [m.event for m in messages] == plain
    assert not FaultConfig().enabled and SHARES.enabled


def test_duplicates_resend_an_earlier_event_byte_for_byte(faulty: list) -> None:
    first_seen: dict[str, tuple[int, bytes]] = {}
    gaps = []
    for index, message in enumerate(faulty):
        if message.kind == "malformed":
            continue
        event_id = message.event.event_id
        if message.kind == "duplicate":
            seen_at, payload = first_seen[event_id]  # sent before, whatever its kind
            assert message.value == payload
            assert message.key == message.event.key
            gaps.append(index - seen_at)
        else:
            assert event_id not in first_seen  # only duplicates repeat an id
            first_seen[event_id] = (index, message.value)
    assert gaps and max(gaps) < 2_000  # "a bit later": within the last few hundred events


def test_late_events_are_behind_the_front_by_more_than_the_lateness(faulty: list) -> None:
    lateness = timedelta(seconds=SHARES.lateness_s)
    front: datetime | None = None
    late = 0
    for message in faulty:
        if message.kind == "late":
            late += 1
            assert front is not None and message.event.event_time < front - lateness
            assert message.event.event_time > front - 2 * lateness - timedelta(milliseconds=1)
        elif message.kind in {"valid", "out_of_order"}:
            assert front is None or message.event.event_time > front - lateness
            front = max(front or message.event.event_time, message.event.event_time)
    assert late > 500
    ids = [m.event.event_id for m in faulty if m.kind in {"valid", "out_of_order", "late"}]
    assert len(ids) == len(set(ids))  # a late event's id is its own, never a regular one's


def test_out_of_order_events_stay_within_the_lateness(faulty: list) -> None:
    lateness = timedelta(seconds=SHARES.lateness_s)
    last_of_source: dict[str, datetime] = {}
    never = front = datetime.min.replace(tzinfo=UTC)
    out_of_order = 0
    for message in faulty:
        if message.kind not in {"valid", "out_of_order"}:
            continue
        event = message.event
        if message.kind == "out_of_order":
            out_of_order += 1
            # Earlier than the previous event of its source (by a step or two here)...
            behind = last_of_source[event.source] - event.event_time
            assert timedelta(0) < behind <= timedelta(milliseconds=30)
            # ... and within the bound, so a watermark of that delay keeps it.
            assert front - event.event_time < lateness
        else:
            assert event.event_time > last_of_source.get(event.source, never)
            last_of_source[event.source] = event.event_time
        front = max(front, event.event_time)
    assert out_of_order > 4_000


def test_out_of_order_events_are_released_before_they_get_late() -> None:
    # A step longer than the lateness: a held event goes before the next one moves the front.
    config = FaultConfig(out_of_order=0.3, lateness_s=60)
    generator = SyntheticGenerator(2, seed=3, step=timedelta(minutes=5))
    front = None
    for message in itertools.islice(inject(generator, config, seed=3), 2_000):
        if message.kind == "out_of_order":
            assert front - message.event.event_time < timedelta(seconds=60)
        front = max(front or message.event.event_time, message.event.event_time)


def test_malformed_messages_break_the_rule_they_are_labelled_with(faulty: list) -> None:
    expected = {
        "not_json": "bad JSON",
        "missing_field": "missing field",
        "bad_timestamp": "bad timestamp in 'event_time'",
        "wrong_type": "wrong type for",
    }
    seen = Counter()
    for message in faulty:
        if message.kind != "malformed":
            continue
        with pytest.raises(InvalidEvent) as info:
            from_json_bytes(message.value)
        assert info.value.reason.startswith(expected[message.detail]), (message, info.value)
        assert message.event is None and message.key.startswith(b"synthetic/")
        seen[info.value.reason.split(":")[0]] += 1
    # Several spellings of each kind, not one canned message.
    assert sum(1 for reason in seen if reason.startswith("missing field")) == 5
    assert sum(1 for reason in seen if reason.startswith("wrong type for")) == 3
    not_json = {m.value[:1] for m in faulty if m.detail == "not_json"}
    assert not_json == {b"{", b"\xff", b"E"}  # cut short, not UTF-8, a log line


@pytest.mark.parametrize(
    "kwargs",
    [
        {"malformed": -0.1},
        {"duplicates": 1.0},
        {"malformed": 0.5, "late": 0.3, "out_of_order": 0.2},
        {"lateness_s": 0},
    ],
)
def test_fault_config_refuses_bad_shares(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"share|lateness"):
        FaultConfig(**kwargs)


def test_fault_shares_come_from_settings() -> None:
    settings = load_settings(
        environ={
            "LAKEPULSE__PRODUCER__MALFORMED_SHARE": "0.1",
            "LAKEPULSE__PRODUCER__DUPLICATE_SHARE": "0.02",
            "LAKEPULSE__PRODUCER__LATE_SHARE": "0.01",
            "LAKEPULSE__PRODUCER__OUT_OF_ORDER_SHARE": "0.05",
            "LAKEPULSE__PRODUCER__LATENESS_SECONDS": "120",
            "LAKEPULSE__PRODUCER__RATE": "2000",
            "LAKEPULSE__PRODUCER__REBASE_TIMES": "false",
        }
    )
    assert FaultConfig.from_settings(settings.producer) == FaultConfig(0.1, 0.02, 0.01, 0.05, 120)
    assert producer.resolve_rate(None, settings) == 2000
    assert settings.producer.rebase_times is False
    assert FaultConfig.from_settings(Settings().producer) == FaultConfig()
    assert Settings().producer.rebase_times is True


# --- rate ---------------------------------------------------------------------------------------


def test_rate_pacing_sends_message_i_at_i_over_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(producer.time, "monotonic", clock.monotonic)
    messages = _faulty(10_000)
    sent_at = [
        clock.now - 1_000.0
        for _ in producer._rated(messages, 5_000.0, clock, producer._StopFlag())  # type: ignore[arg-type]
    ]
    assert len(sent_at) == 10_000
    due = [i / 5_000 for i in range(10_000)]
    # Never late by the fake clock, and early by less than the slack.
    assert all(
        -1e-9 <= d - t <= producer._RATE_SLACK_S + 1e-9 for t, d in zip(sent_at, due, strict=True)
    )
    assert sent_at[-1] == pytest.approx(2.0, abs=0.003)
    assert clock.polls < 2_000  # woken about every other millisecond, not for every message
    with pytest.raises(ValueError, match="rate"):
        producer.resolve_rate(-5, Settings())


def test_with_a_rate_synthetic_event_time_keeps_pace_with_wall_time() -> None:
    assert step_for_rate(5_000, 50) == timedelta(milliseconds=10)
    assert step_for_rate(2_000, 50, SHARES.extra_share) == timedelta(milliseconds=28)
    assert step_for_rate(1e9, 1) == timedelta(milliseconds=1)
    settings = Settings(paths=PathSettings(nab_dir=Path("/nowhere")))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    mode, events, _ = producer.open_events(
        settings, None, True, 0, start, rate=2_000, sources_count=50,
        extra_share=SHARES.extra_share,
    )  # fmt: skip
    assert mode == "synthetic"
    n = 60_000  # 30 s of wall time at 2,000 messages/s
    messages = list(itertools.islice(inject(events, SHARES, seed=0), n))
    assert len({m.key for m in messages}) == 50
    front = max(m.event.event_time for m in messages if m.kind == "valid")
    assert (front - start).total_seconds() == pytest.approx(n / 2_000, rel=0.05)


# --- NAB rebased onto the replay's clock --------------------------------------------------------


def test_rebased_replay_puts_every_series_on_the_replay_clock(nab_dir: Path) -> None:
    epoch = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    selection = "realKnownCause/nyc_taxi,artificialNoAnomaly/art_daily_no_noise"
    original = list(itertools.islice(nab.replay(nab_dir, selection), 2_000))
    rebased = list(itertools.islice(nab.replay(nab_dir, selection, epoch=epoch), 2_000))
    assert {i.event.event_time.year for i in original} == {2014}
    assert {i.event.event_time.year for i in rebased} == {2026}
    first_of: dict[str, datetime] = {}
    for before, after in zip(original, rebased, strict=True):
        assert after.offset == before.offset
        assert after.event.event_time == epoch + timedelta(seconds=after.offset)
        assert after.event.source_time == before.event.event_time
        assert after.event.value == before.event.value
        assert after.event.event_id == event_id_for(after.event.source, after.event.event_time)
        first_of.setdefault(after.event.source, after.event.event_time)
    assert set(first_of.values()) == {epoch}  # every series starts at the epoch
    payload = orjson.loads(rebased[0].event.to_json_bytes())
    assert payload["source_time"] == format_event_time(original[0].event.event_time)
    assert "source_time" not in orjson.loads(original[0].event.to_json_bytes())
    # Rebased ids are their own (so the lake does not confuse the two) and stable per epoch.
    assert not {i.event.event_id for i in original} & {i.event.event_id for i in rebased}
    again = itertools.islice(nab.replay(nab_dir, selection, epoch=epoch), 2_000)
    assert [i.event.event_id for i in again] == [i.event.event_id for i in rebased]
    with pytest.raises(ValueError, match="time zone"):
        nab.replay(nab_dir, selection, epoch=datetime(2026, 1, 1))


def test_rebased_repeated_timestamps_keep_distinct_ids(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "cat"
    folder.mkdir(parents=True)
    rows = ["00:00:00,1", "00:05:00,2", "00:05:00,3"]
    (folder / "s.csv").write_text("timestamp,value\n" + "".join(f"2014-01-01 {r}\n" for r in rows))
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    events = [item.event for item in nab.replay(tmp_path, epoch=epoch)]
    assert len({e.event_id for e in events}) == 3
    assert events[2].event_id == event_id_for("cat/s", epoch + timedelta(minutes=5), seq=1)


def test_replay_epoch_is_chosen_once_and_kept_by_a_resumed_replay(tmp_path: Path) -> None:
    now = datetime(2026, 11, 26, 17, 3, 4, 567_000, tzinfo=UTC)
    later = now + timedelta(hours=5)
    # A new replay: rebased by default, at now to the second, or as asked.
    assert producer.replay_epoch(None, None, None, True, now) == now.replace(microsecond=0)
    assert producer.replay_epoch(None, False, None, True, now) is None
    assert producer.replay_epoch(None, None, None, False, now) is None
    assert producer.replay_epoch(None, True, None, False, now) == now.replace(microsecond=0)
    chosen = datetime(2026, 1, 1, tzinfo=UTC)
    assert producer.replay_epoch(None, None, chosen, True, now) == chosen

    # The epoch goes to the position file and comes back, whatever is asked on resuming.
    path = tmp_path / "position.json"
    position = producer.ReplayPosition(path, "nab:events:", replay_epoch=now.replace(microsecond=0))
    position.save(1_234)
    saved = producer.ReplayPosition(path, "nab:events:").load()
    assert saved == producer.SavedPosition(1_234, now.replace(microsecond=0))
    assert orjson.loads(path.read_bytes())["rebased"] is True
    for rebase, start in [(None, None), (True, None), (False, None), (None, chosen)]:
        assert producer.replay_epoch(saved, rebase, start, True, later) == saved.replay_epoch
    # Another replay's file is ignored; an original-times replay stays one when resumed.
    assert producer.ReplayPosition(path, "nab:events:realTweets").load() is None
    producer.ReplayPosition(path, "nab:events:").save(10)
    original = producer.ReplayPosition(path, "nab:events:").load()
    assert original == producer.SavedPosition(10, None)
    assert producer.replay_epoch(original, None, None, True, later) is None
    # A position file from before rebasing existed means original times, too.
    path.write_bytes(orjson.dumps({"replay": "nab:events:", "delivered": 77}))
    legacy = producer.ReplayPosition(path, "nab:events:").load()
    assert legacy == producer.SavedPosition(77, None)


def test_a_resumed_rebased_replay_continues_with_the_same_ids(
    nab_dir: Path, tmp_path: Path
) -> None:
    selection = "realAdExchange"
    path = tmp_path / "position.json"
    clock = datetime(2026, 11, 26, 9, 0, 0, 321_000, tzinfo=UTC)
    # First run: chooses its epoch, records it, sends 300 events.
    epoch = producer.replay_epoch(None, None, None, True, clock)
    producer.ReplayPosition(path, selection, epoch).save(300)
    first = list(itertools.islice(nab.replay(nab_dir, selection, epoch=epoch), 300))
    # Hours later the replay resumes: same epoch, the next 200 events.
    saved = producer.ReplayPosition(path, selection).load()
    assert saved is not None
    resumed_epoch = producer.replay_epoch(saved, None, None, True, clock + timedelta(hours=3))
    resumed = nab.replay(nab_dir, selection, epoch=resumed_epoch)
    second = list(itertools.islice(resumed, saved.delivered, saved.delivered + 200))
    continuous = list(itertools.islice(nab.replay(nab_dir, selection, epoch=epoch), 500))
    assert [i.event.event_id for i in first + second] == [i.event.event_id for i in continuous]


# --- topics from settings -----------------------------------------------------------------------


def test_topics_come_from_settings() -> None:
    settings = Settings()
    topics = stack.topics(settings)
    assert topics == {
        "events": (
            3,
            {"retention.ms": str(168 * 3_600_000), "cleanup.policy": "delete",
             "min.insync.replicas": "1"},
        ),
        "events.dlq": (
            1,
            {"retention.ms": str(720 * 3_600_000), "cleanup.policy": "delete",
             "min.insync.replicas": "1"},
        ),
        "anomalies": (
            1,
            {"retention.ms": str(720 * 3_600_000), "cleanup.policy": "delete",
             "min.insync.replicas": "1"},
        ),
    }  # fmt: skip
    cluster = load_settings(
        environ={
            "LAKEPULSE__KAFKA__DLQ_TOPIC": "lp.dead-letters",
            "LAKEPULSE__KAFKA__EVENTS_PARTITIONS": "12",
            "LAKEPULSE__KAFKA__DLQ_PARTITIONS": "2",
            "LAKEPULSE__KAFKA__MIN_INSYNC_REPLICAS": "2",
            "LAKEPULSE__KAFKA__DLQ_RETENTION_HOURS": "24",
        }
    )
    topics = stack.topics(cluster)
    assert topics["events"][0] == 12
    assert topics["lp.dead-letters"] == (
        2,
        {"retention.ms": "86400000", "cleanup.policy": "delete", "min.insync.replicas": "2"},
    )


def test_partition_mismatches_are_reported() -> None:
    wanted = {"events": (3, {}), "events.dlq": (1, {}), "new": (2, {})}
    assert kafka_service.partition_mismatches(wanted, {"events": 6, "events.dlq": 1}) == {
        "events": (6, 3)
    }
