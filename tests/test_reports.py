"""The named analyses and the daily report over a small lake on local disk with known contents.

Real Spark runs every query; the numbers, charts, page and e-mail are checked against what was
written into the lake. The report on the running platform (DAG, SMTP) is in
test_daily_report.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lakepulse.analysis import QueryError, load_query, parse_params, query_names, run_named
from lakepulse.reports import REPORT_QUERIES, analyse, as_dict, key_numbers
from lakepulse.settings import HdfsSettings, PathSettings, Settings, SmtpSettings, SparkSettings
from lakepulse.spark_session import build_spark

pytestmark = pytest.mark.reports

DAY = dt.date(2026, 11, 25)
BEFORE = DAY - dt.timedelta(days=1)
ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-lake")
    settings = Settings(
        paths=PathSettings(data_dir=root / "data", jars_dir=root / "no-jars"),
        hdfs=HdfsSettings(fs_uri_override="file://", lake_root=str(root / "lake")),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2),
        smtp=SmtpSettings(recipients="ops@example.test, oncall@example.test"),
    )
    spark = build_spark(settings, "test_reports")
    _write_lake(spark, settings)
    yield spark, settings
    spark.stop()


def _write_lake(spark, settings: Settings) -> None:
    lake = settings.hdfs.lake_path
    # Curated events: alpha 3 at 01h and 2 at 05h, beta 4 at 01h (one missing value, one
    # labelled anomaly) on DAY; alpha twice the day before; one event the day after.
    events = [
        ("a1", "alpha", at(DAY, 1, 0), 10.0, False),
        ("a2", "alpha", at(DAY, 1, 5), 20.0, False),
        ("a3", "alpha", at(DAY, 1, 10), 30.0, False),
        ("a4", "alpha", at(DAY, 5, 0), 40.0, False),
        ("a5", "alpha", at(DAY, 5, 5), 50.0, False),
        ("b1", "beta", at(DAY, 1, 0), 5.0, False),
        ("b2", "beta", at(DAY, 1, 5), None, False),
        ("b3", "beta", at(DAY, 1, 10), 7.0, True),
        ("b4", "beta", at(DAY, 1, 15), 6.0, False),
        ("p1", "alpha", at(BEFORE, 12), 10.0, False),
        ("p2", "alpha", at(BEFORE, 13), 10.0, False),
        ("n1", "alpha", at(DAY + dt.timedelta(days=1), 0, 1), 99.0, False),
    ]
    rows = [(i, s, t, v, v is None, a, t, t.date()) for i, s, t, v, a in events]
    spark.createDataFrame(
        rows,
        "event_id string, source string, event_time timestamp, value double, "
        "value_missing boolean, is_anomaly boolean, ingested_at timestamp, event_date date",
    ).write.partitionBy("event_date").parquet(lake("curated", "events"))
    # Raw zone: landed on DAY at 10h (lags 5 s and 3 s) and 11h (1 s); one the day before.
    landed = [
        ("r1", at(DAY, 10, 0, 0), at(DAY, 10, 0, 5)),
        ("r2", at(DAY, 10, 0, 2), at(DAY, 10, 0, 5)),
        ("r3", at(DAY, 11, 0, 0), at(DAY, 11, 0, 1)),
        ("r0", at(BEFORE, 9, 0, 0), at(BEFORE, 9, 0, 30)),
    ]
    spark.createDataFrame(
        [(i, "alpha", k, 1.0, False, k, ing, k.date(), k.hour) for i, k, ing in landed],
        "event_id string, source string, event_time timestamp, value double, "
        "is_anomaly boolean, kafka_timestamp timestamp, ingested_at timestamp, "
        "event_date date, event_hour int",
    ).write.partitionBy("event_date", "event_hour").parquet(settings.raw_events_path)
    # Quality results as lakepulse.quality.verdicts writes them: 3 of 4 passed on DAY.
    results = {
        DAY: [("events", True), ("events", True), ("events", False), ("raw_events", True)],
        BEFORE: [("events", False)],
    }
    for day, verdicts in results.items():
        folder = Path(settings.hdfs.lake_root) / "_quality" / "results" / f"validated_date={day}"
        folder.mkdir(parents=True)
        lines = [
            json.dumps({"validated_at": f"{day}T08:00:00Z", "run_id": "r", "table": table,
                        "partition_date": str(day), "passed": passed, "rows": 1})
            for table, passed in verdicts
        ]  # fmt: skip
        (folder / "results.json").write_text("\n".join(lines) + "\n")
    restarts = Path(settings.hdfs.lake_root) / "_status" / "restarts"
    restarts.mkdir(parents=True)
    for name, moment, reason in (("a", f"{DAY}T03:00:00.000Z", "job not running"),
                                 ("b", f"{BEFORE}T03:00:00.000Z", "stalled")):  # fmt: skip
        (restarts / f"{name}.json").write_text(json.dumps({"at": moment, "reason": reason}))


PREDICTIONS = [
    # source, event_time, value, forecast, lower, upper, score, anomaly
    ("alpha", at(DAY, 1, 0), 10.0, 9.0, 8.0, 11.0, 0.2, False),
    ("alpha", at(DAY, 1, 5), 20.0, 10.0, 8.0, 12.0, 0.95, True),
    ("beta", at(DAY, 1, 0), 5.0, 5.0, 4.0, 6.0, 0.1, False),
    ("beta", at(DAY + dt.timedelta(days=1), 1, 0), 50.0, 5.0, 4.0, 6.0, 0.99, True),
]


@pytest.fixture
def with_predictions(lake):
    """A `predictions` view shaped like the table the anomaly model will write (issue 5)."""
    spark, _ = lake
    spark.createDataFrame(
        [(*row, "v1") for row in PREDICTIONS],
        "source string, event_time timestamp, value double, forecast double, "
        "forecast_lower double, forecast_upper double, anomaly_score double, "
        "is_anomaly boolean, model_version string",
    ).createOrReplaceTempView("predictions")
    yield
    spark.catalog.dropTempView("predictions")


def test_every_named_query_parses_and_declares_its_day():
    assert set(REPORT_QUERIES) <= set(query_names())
    for name in query_names():
        query = load_query(name)
        assert query.description, name
        assert [p.name for p in query.params][:1] == ["day"], name
        assert ":day" in query.sql
        assert query.tables, name
    # Its own CTE (daily) is not a table it needs.
    assert load_query("trend_by_source").tables == ["events"]


def test_parameters_are_checked_before_spark_starts():
    query = load_query("trend_by_source")
    assert query.bind({"day": "2026-11-25"}) == {"day": DAY, "days": 7}
    with pytest.raises(QueryError, match="not a date"):
        query.bind({"day": "yesterday"})
    with pytest.raises(QueryError, match="no parameter hours"):
        query.bind({"day": "2026-11-25", "hours": "3"})
    with pytest.raises(QueryError, match="needs --param day"):
        query.bind({})
    with pytest.raises(QueryError, match="NAME=VALUE"):
        parse_params(["day"])


def test_the_analyses_answer_from_the_lake(lake, with_predictions):
    spark, settings = lake
    data = analyse(settings, DAY, spark=spark)
    volume = {
        (r["source"], r["hour"]): r["events"] for r in data["volume_by_source_hour"].records()
    }
    assert volume == {("alpha", 1): 3, ("alpha", 5): 2, ("beta", 1): 4}
    lag = data["pipeline_lag"].records()
    assert [(r["hour"], r["events"], r["avg_lag_s"], r["max_lag_s"]) for r in lag] == [
        (10, 2, 4.0, 5.0),
        (11, 1, 1.0, 1.0),
    ]
    assert [r["reason"] for r in data["pipeline_restarts"].records()] == ["job not running"]
    quality = {r["table"]: (r["validations"], r["passed"])
               for r in data["quality_pass_rate"].records()}  # fmt: skip
    assert quality == {"events": (3, 2), "raw_events": (1, 1)}
    trend_days = {r["day"] for r in data["quality_pass_rate_trend"].records()}
    assert trend_days == {str(DAY), str(BEFORE)}
    top = data["top_anomalies"].records()
    assert [(r["source"], r["anomaly_score"]) for r in top] == [("alpha", 0.95)]
    forecasts = {r["source"]: r for r in data["forecast_vs_actual"].records()}
    assert forecasts["alpha"]["mae"] == 5.5 and forecasts["alpha"]["in_band_pct"] == 50.0
    assert forecasts["beta"]["mae"] == 0.0 and forecasts["beta"]["in_band_pct"] == 100.0
    trend = {r["source"]: r for r in data["trend_by_source"].records()}
    assert trend["alpha"]["events_day"] == 5 and trend["alpha"]["mean_before"] == 10.0
    assert trend["alpha"]["mean_change_pct"] == 200.0  # mean 30 against 10

    numbers = as_dict(key_numbers(data))
    assert numbers["Events (curated)"] == 9
    assert numbers["Sources reporting"] == 2
    assert numbers["Busiest hour (UTC)"] == 7
    assert numbers["Missing values"] == 1
    assert numbers["Data-quality pass rate"] == 75.0
    assert numbers["Pipeline lag p95, worst hour"] == 5.0
    assert numbers["Streaming job restarts"] == 1
    assert numbers["Anomalies flagged"] == 1
    assert numbers["Forecast band coverage"] == pytest.approx(66.7)


def test_without_predictions_the_report_says_so_instead_of_failing(lake):
    spark, settings = lake
    data = analyse(settings, DAY, spark=spark)
    for name in ("top_anomalies", "forecast_vs_actual", "prediction_series"):
        assert data[name].missing == ["predictions"] and data[name].rows == []
    numbers = as_dict(key_numbers(data))
    assert numbers["Anomalies flagged"] is None
    assert numbers["Events (curated)"] == 9  # the rest of the report is unaffected

    from lakepulse.reports.page import build_html

    html = build_html(data, key_numbers(data), lambda name: f"{name}.png")
    assert "no table predictions yet" in html


def test_a_day_without_anything_still_gives_a_report(lake):
    spark, settings = lake
    data = analyse(settings, dt.date(2020, 1, 1), spark=spark)
    numbers = as_dict(key_numbers(data))
    assert numbers["Events (curated)"] == 0 and numbers["Data-quality pass rate"] is None

    from lakepulse.reports.charts import render_charts

    assert all(png.startswith(PNG_MAGIC) for png in render_charts(data).values())


def test_charts_are_png_and_the_same_for_the_same_data(lake, with_predictions):
    from PIL import Image

    from lakepulse.reports.charts import CHART_NAMES, render_charts, source_colours

    spark, settings = lake
    data = analyse(settings, DAY, spark=spark)
    first, second = render_charts(data), render_charts(data)
    assert set(first) == set(CHART_NAMES)
    assert first == second
    for name, png in first.items():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.width >= 800, name
    colours = source_colours(data)
    assert set(colours) == {"alpha", "beta"} and colours["alpha"] != colours["beta"]


def test_publish_writes_the_days_page_and_a_rerun_writes_the_same_bytes(lake, with_predictions):
    from lakepulse.reports.daily import load_data, publish, report_dir, reports_root, save_data

    spark, settings = lake
    save_data(settings, analyse(settings, DAY, spark=spark))
    published = publish(settings, load_data(settings, DAY))
    folder = report_dir(settings, DAY)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {"index.html", "data.json", "numbers.json", *(f"{n}.png" for n in published.charts)} \
        == set(files)  # fmt: skip
    page = files["index.html"].decode()
    for name in published.charts:
        assert f'src="{name}.png"' in page
    assert f"{DAY}/index.html" in (reports_root(settings) / "index.html").read_text()
    assert json.loads(files["numbers.json"])["Events (curated)"] == 9

    save_data(settings, analyse(settings, DAY, spark=spark))
    publish(settings, load_data(settings, DAY))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


def test_the_email_reaches_an_smtp_server_with_inline_charts(lake, with_predictions, tmp_path):
    """Through the smtp provider's hook, to a real SMTP server (aiosmtpd) on loopback."""
    from aiosmtpd.controller import Controller

    from lakepulse.reports.daily import load_data, publish, save_data, send
    from lakepulse.services.mailbox import MaildirHandler, read_messages

    spark, settings = lake
    save_data(settings, analyse(settings, DAY, spark=spark))
    published = publish(settings, load_data(settings, DAY))
    port = _free_port()
    controller = Controller(MaildirHandler(tmp_path / "box"), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                "extra": {"disable_tls": True, "disable_ssl": True}}  # fmt: skip
        os.environ["AIRFLOW_CONN_REPORT_TEST_SMTP"] = json.dumps(conn)
        sent_to = send(settings, published, conn_id="report_test_smtp")
    finally:
        os.environ.pop("AIRFLOW_CONN_REPORT_TEST_SMTP", None)
        controller.stop()
    (message,) = read_messages(tmp_path / "box")
    assert sent_to == ["ops@example.test", "oncall@example.test"]
    assert message["Subject"] == published.subject
    assert message["Subject"].startswith(f"Lakepulse daily report {DAY}: 9 events")
    assert set(message["X-Envelope-To"].split(", ")) == set(sent_to)
    html = message.get_body(preferencelist=("html",)).get_content()
    cids = {part["Content-ID"].strip("<>"): part.get_payload(decode=True)
            for part in message.walk() if part["Content-ID"]}  # fmt: skip
    assert set(cids) == {f"{name}.png" for name in published.charts}
    for cid, payload in cids.items():
        assert f'src="cid:{cid}"' in html
        assert payload.startswith(PNG_MAGIC)
    assert 'data-label="Data-quality pass rate">75.0 %<' in html


def _free_port() -> int:
    # aiosmtpd's controller cannot take port 0: ask the OS for a free port, then hand it over.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_named_query_from_the_command_line(lake):
    """The README's `lakepulse sql --query` example, in a process of its own."""
    _, settings = lake
    env = {
        **os.environ,
        "LAKEPULSE__HDFS__FS_URI_OVERRIDE": "file://",
        "LAKEPULSE__HDFS__LAKE_ROOT": settings.hdfs.lake_root,
        "LAKEPULSE__SPARK__MASTER": "local[1]",
    }
    lakepulse = str(Path(sys.executable).parent / "lakepulse")
    result = subprocess.run(
        [lakepulse, "sql", "--query", "volume_by_source_hour", "--param", f"day={DAY}"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"volume_by_source_hour (day={DAY})"
    table = [[cell.strip() for cell in line.split("|")] for line in lines[3:-1]]
    assert [row[:3] for row in table] == [["alpha", "1", "3"], ["alpha", "5", "2"],
                                          ["beta", "1", "4"]]  # fmt: skip
    assert lines[-1] == "(3 rows)"
    missing = subprocess.run(
        [lakepulse, "sql", "--query", "top_anomalies", "--param", f"day={DAY}"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert missing.returncode == 0, missing.stderr[-2000:]
    assert "no data yet, table predictions does not exist" in missing.stdout


def test_run_named_refuses_an_unknown_query(lake):
    _, settings = lake
    with pytest.raises(QueryError, match="no query named"):
        run_named(settings, "volume_per_planet", {"day": DAY})
