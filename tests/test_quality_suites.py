"""The data-quality suites on a local lake: the checked-in context matches the code, a clean
partition passes, and each kind of bad data fails for its own reason (no HDFS needed; the
platform tests in test_data_quality.py add quarantine, verdicts, the DAG and the alert)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dq_faults import EXPECTED_REASON, FAULTS, SOURCE, faulty_frame

from lakepulse.quality.partitions import Partition
from lakepulse.quality.suites import CONTEXT_ROOT, suite_expectations
from lakepulse.quality.validate import Validator
from lakepulse.settings import HdfsSettings, PathSettings, Settings, SparkSettings

pytestmark = pytest.mark.quality


def local_settings(root: Path) -> Settings:
    return Settings(
        paths=PathSettings(data_dir=root / "data", jars_dir=root / "no-jars"),
        hdfs=HdfsSettings(fs_uri_override="file://", lake_root=str(root / "lake")),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2),
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return local_settings(tmp_path_factory.mktemp("quality"))


@pytest.fixture(scope="module")
def spark(settings: Settings) -> Iterator[Any]:
    from lakepulse.spark_session import build_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = build_spark(settings, "test_quality_suites")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def validator(spark: Any, settings: Settings) -> Validator:
    return Validator(spark, settings, "test-run")


def _write_partition(spark: Any, settings: Settings, fault: str | None, day: int) -> Partition:
    frame = faulty_frame(spark, settings, fault, day_index=day)
    partition = Partition("events", frame.select("event_time").first()[0].date())
    frame.write.mode("overwrite").parquet(partition.path(settings))
    return partition


def test_the_checked_in_context_holds_the_suites_the_code_defines() -> None:
    for name, expectations in suite_expectations().items():
        stored = json.loads((CONTEXT_ROOT / "gx" / "expectations" / f"{name}.json").read_text())
        found = [(e["type"], e["kwargs"]) for e in stored["expectations"]]
        wanted = [(e.expectation_type, e.configuration.kwargs) for e in expectations]
        assert sorted(json.dumps(e, sort_keys=True) for e in found) == sorted(
            json.dumps(e, sort_keys=True) for e in wanted
        ), (
            f"expectations/gx/expectations/{name}.json differs from lakepulse.quality.suites: "
            "run `lakepulse quality write-context` and check the result in"
        )
        assert (CONTEXT_ROOT / "gx" / "checkpoints" / f"{name}.json").exists()


def test_the_profile_knows_the_sources_the_tests_use() -> None:
    from lakepulse.quality.profile import load_profile

    profile = load_profile(Settings().quality.profile_path)
    stats = profile["sources"][SOURCE]
    assert stats["low"] < stats["min"] <= stats["mean"] <= stats["max"] < stats["high"]


def test_a_clean_partition_passes(spark: Any, settings: Settings, validator: Validator) -> None:
    verdict = validator.validate(_write_partition(spark, settings, None, day=3))
    assert verdict is not None
    assert verdict.passed, [f.describe() for f in verdict.failures]
    assert verdict.rows == 288 and verdict.expectations > 20


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_fails_for_its_own_reason(
    spark: Any, settings: Settings, validator: Validator, fault: str
) -> None:
    partition = _write_partition(spark, settings, fault, day=4 + FAULTS.index(fault))
    verdict = validator.validate(partition)
    assert verdict is not None and not verdict.passed
    assert EXPECTED_REASON[fault] in verdict.reasons, [f.describe() for f in verdict.failures]
    named = [f for f in verdict.failures if f.expectation == EXPECTED_REASON[fault]]
    assert any(f.samples or f.observed is not None for f in named)


def test_failures_name_sample_rows(spark: Any, settings: Settings, validator: Validator) -> None:
    verdict = validator.validate(_write_partition(spark, settings, "out_of_range", day=12))
    (failure,) = [f for f in verdict.failures if f.column == "value_high vs value"]
    assert failure.unexpected_count and failure.unexpected_count > 0
    assert failure.samples and all(row["value"] == 1e6 for row in failure.samples)
    assert all(row["source"] == SOURCE for row in failure.samples)


def test_data_docs_are_built(settings: Settings, validator: Validator) -> None:
    validator.build_docs()
    index = settings.data_docs_dir / "index.html"
    assert index.exists(), "Data Docs were not built"
    assert "events" in index.read_text()
    assert dt.datetime.fromtimestamp(index.stat().st_mtime) > dt.datetime.now() - dt.timedelta(
        hours=1
    )
