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

import orjson
import pytest

from lakepulse import producer
from lakepulse.events import (
    EVENT_FIELDS,
    EVENT_ID_NAMESPACE,
    EVENT_JSON_SCHEMA,
    FIELD_NAMES,
    Event,
    InvalidEvent,
    event_id_for,
    from_json_bytes,
    spark_ddl,
)
from lakepulse.settings import PathSettings, Settings
from lakepulse.sources import ReplayEvent, nab
from lakepulse.sources.synthetic import SyntheticGenerator

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
        "is_anomaly BOOLEAN"
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
