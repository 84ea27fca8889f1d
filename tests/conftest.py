"""Test configuration: a private deployment of Lakepulse for the test session.

Tests run against their own data directory (`.lakepulse-test/`, wiped when the platform
starts) and their own ports (the defaults + 20000), so `make test` works while the platform
started by `make run` keeps running. The `platform` fixture starts the real services once per
session and stops them at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakepulse.settings import offset_ports_environment

ROOT = Path(__file__).resolve().parents[1]
# LAKEPULSE_TEST_DATA_DIR and LAKEPULSE_TEST_PORT_OFFSET let two test sessions run side by side.
TEST_DATA_DIR = Path(os.environ.get("LAKEPULSE_TEST_DATA_DIR", ROOT / ".lakepulse-test"))
PORT_OFFSET = int(os.environ.get("LAKEPULSE_TEST_PORT_OFFSET", "20000"))
TEST_ENV = {
    "LAKEPULSE__PATHS__DATA_DIR": str(TEST_DATA_DIR),
    **offset_ports_environment(PORT_OFFSET),
    # Short trigger and heartbeat so that tests see data and failures quickly.
    "LAKEPULSE__SPARK__TRIGGER_SECONDS": "2",
    "LAKEPULSE__SPARK__HEARTBEAT_TIMEOUT_SECONDS": "60",
    # Live scoring looks for a new champion often, so that a swap shows within a test.
    "LAKEPULSE__ML__CHAMPION_POLL_SECONDS": "5",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that produce events at "now" move the session's shared event-time watermark to
    now: every test replaying NAB's original (2011-2015) times must run before them."""
    items.sort(key=lambda item: item.get_closest_marker("event_time_now") is not None)


def pytest_configure(config: pytest.Config) -> None:
    # Before anything imports airflow or resolves settings: Airflow reads its environment once.
    os.environ.update(TEST_ENV)
    # py4j logs "closing connection" from finalizers after pytest closed its streams.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from lakepulse.services.airflow import airflow_env
    from lakepulse.settings import load_settings

    settings = load_settings()
    os.environ.update(airflow_env(settings))
    _require_nab(settings)


def _require_nab(settings) -> None:
    """The platform tests replay NAB's original times: without the corpus the producer would
    fall back to synthetic events at "now" and move the shared watermark under every test."""
    from lakepulse.sources.nab import NAB_HINT, data_dir

    found = data_dir(settings.paths.nab_dir)
    if not found.is_dir():
        raise pytest.UsageError(
            f"the tests need the NAB corpus and found no {found}. {NAB_HINT} Or point "
            "LAKEPULSE__PATHS__NAB_DIR at a folder holding it (the default is ../shared/data/nab "
            "beside the project)."
        )


@pytest.fixture(scope="session")
def settings():
    from lakepulse.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def platform(settings) -> Iterator:
    """The whole stack (Kafka, HDFS, MLflow, Airflow and the streaming job Airflow starts)."""
    from lakepulse.services import stack

    messages: list[str] = []
    stack.down(settings, say=messages.append)  # a previous session's leftovers
    if os.environ.get("LAKEPULSE_TEST_KEEP_DATA") != "1":
        # A fresh deployment; the instance secrets stay, this process's Airflow env uses them.
        TEST_DATA_DIR.mkdir(parents=True, exist_ok=True)
        for entry in TEST_DATA_DIR.iterdir():
            if entry.name != "secrets":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    try:
        stack.up(settings, start_producer=False, wait_for_data=False, say=messages.append)
        yield settings
    finally:
        stack.down(settings, say=messages.append)


@pytest.fixture
def kafka_settings(platform):
    """Settings whose Kafka runs, with a fresh events topic name."""
    from lakepulse.services import kafka

    topic = f"test-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topics(platform, {topic: (platform.kafka.events_partitions, {})})
    return dataclasses.replace(
        platform, kafka=dataclasses.replace(platform.kafka, events_topic=topic)
    )


@pytest.fixture(scope="module")
def lake_spark(platform):
    """A local SparkSession reading the test platform's lake.

    Per module: a process has one SparkContext, and modules that build their own session
    (with other settings) stop it when they end.
    """
    from lakepulse.spark_session import build_spark

    session = build_spark(platform, "tests")
    yield session
    session.stop()


@pytest.fixture
def lake_rows(platform, lake_spark):
    """Run SQL over the lake; [] while the table does not exist yet."""
    from lakepulse.lake import LakeError, run_sql

    def rows(query: str) -> list[tuple]:
        try:
            return run_sql(platform, query, spark=lake_spark)[1]
        except LakeError:
            return []

    return rows


def wait_for(probe, done, deadline_s: float, what: str, interval: float = 3.0):
    """Call ``probe`` until ``done(result)``; fail naming ``what`` and the last result."""
    deadline = time.monotonic() + deadline_s
    result = probe()
    while not done(result):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {deadline_s:.0f}s; last result: {result}")
        time.sleep(interval)
        result = probe()
    return result


@pytest.fixture(scope="session")
def job_running(platform):
    """The streaming job that Airflow's supervisor started is alive."""
    from lakepulse.services.process import wait_until
    from lakepulse.services.stack import checks

    def job_alive():
        return next(c.health for c in checks(platform) if c.name == "streaming-job")

    health = wait_until(job_alive, timeout=480, interval=3, what="streaming job")
    assert health.ok, f"the streaming job did not come up: {health.detail}"
    return platform


# Four NAB series with regular 5-minute steps: 288 events each per day.
REPLAY_SOURCES = ",".join(
    f"realAWSCloudwatch/{name}"
    for name in ("ec2_cpu_utilization_24ae8d", "ec2_cpu_utilization_5f5533",
                 "grok_asg_anomaly", "rds_cpu_utilization_cc0c53")
)  # fmt: skip
REPLAY_STEPS = 300  # the day and 55 minutes more, so that the stream closes the day


@pytest.fixture(scope="session")
def replayed_day(job_running):
    """Yesterday (UTC), whole: four NAB series replayed onto its clock from midnight.

    Shared by the report and REST API tests, which need a closed day with known contents.
    Yesterday, not today: the stream's watermark must stay behind the wall clock, or events
    that later tests send with current times would count as late. It is far ahead of NAB's
    original times, so the modules using it are marked ``event_time_now``.
    """
    import datetime as dt

    from lakepulse.producer import produce

    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    sources = REPLAY_SOURCES.split(",")
    report = produce(job_running, sources=REPLAY_SOURCES, speedup=0, start=start, rebase=True,
                     limit=len(sources) * REPLAY_STEPS, progress=False)  # fmt: skip
    assert report.ok, report.as_dict()
    return day, len(sources) * 288
