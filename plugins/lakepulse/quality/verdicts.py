"""Verdicts on partitions, the validation history and the quarantine, all kept in HDFS.

``<lake>/_quality/``

- ``verdicts/<table>/<column>=<date>.<passed|failed>.json``: the latest verdict on each
  partition; the file name carries the outcome, so one directory listing answers "which
  partitions may be read".
- ``results/validated_date=<date>/<run>__<table>__<date>.json``: one JSON line per validation,
  the ``quality_results`` table that the pass rate over time is charted from.

A failed partition of a plain table is moved to
``<lake>/quarantine/partitions/<table>/<column>=<date>/`` (readers never see it); a failed raw
partition stays where the file sink's log expects it and is marked only. Either way
:func:`trusted_partitions` leaves it out: it is the one selection that training, reports and
any other reader of validated data use.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lakepulse.quality.partitions import VALIDATED_TABLES, Partition, _hdfs_path
from lakepulse.settings import Settings
from lakepulse.webhdfs import WebHdfs, WebHdfsError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_VERDICT_FILE = re.compile(
    r"^(?P<folder>[a-z_]+=\d{4}-\d{2}-\d{2})\.(?P<outcome>passed|failed)\.json$"
)


@dataclass(frozen=True)
class Failure:
    """One expectation a partition did not meet."""

    suite: str
    expectation: str
    column: str | None
    observed: Any
    unexpected_count: int | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = f", {self.unexpected_count} rows" if self.unexpected_count else ""
        return f"{self.suite}: {self.expectation}{where} (observed {self.observed}{count})"


@dataclass(frozen=True)
class Verdict:
    partition: str  # Partition.key
    passed: bool
    run_id: str
    validated_at: str
    rows: int
    expectations: int
    seconds: float
    failures: list[Failure] = field(default_factory=list)
    quarantined_to: str | None = None

    @property
    def reasons(self) -> list[str]:
        """The failed expectation types, e.g. ``expect_column_values_to_be_unique``."""
        return sorted({failure.expectation for failure in self.failures})

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        data = json.loads(text)
        data["failures"] = [Failure(**item) for item in data.get("failures", [])]
        return cls(**data)


def _verdict_dir(settings: Settings, table: str) -> str:
    return f"{settings.quality_path}/verdicts/{table}"


def _verdict_name(partition: Partition, outcome: str) -> str:
    return f"{partition.key.split('/', 1)[1]}.{outcome}.json"


def quarantine_root(settings: Settings) -> str:
    return settings.hdfs.lake_root.rstrip("/") + "/quarantine/partitions"


def record(client: WebHdfs, settings: Settings, verdict: Verdict) -> None:
    """Keep ``verdict`` as the partition's latest, and append it to the results history."""
    partition = Partition.parse(verdict.partition)
    outcome, other = ("passed", "failed") if verdict.passed else ("failed", "passed")
    folder = _verdict_dir(settings, partition.table)
    client.write_text(f"{folder}/{_verdict_name(partition, outcome)}", verdict.to_json())
    client.delete(f"{folder}/{_verdict_name(partition, other)}")
    day = verdict.validated_at[:10]
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", verdict.run_id)
    result = {
        "validated_at": verdict.validated_at,
        "run_id": verdict.run_id,
        "table": partition.table,
        "partition_date": partition.day.isoformat(),
        "passed": verdict.passed,
        "failed_expectations": verdict.reasons,
        "expectations": verdict.expectations,
        "rows": verdict.rows,
        "seconds": verdict.seconds,
    }
    client.write_text(
        f"{settings.quality_path}/results/validated_date={day}/"
        f"{safe_run}__{partition.table}__{partition.day.isoformat()}.json",
        json.dumps(result) + "\n",
    )


def verdicts(client: WebHdfs, settings: Settings, table: str) -> dict[Partition, bool]:
    """Each judged partition of ``table`` and whether it passed (one listing, no reads)."""
    try:
        entries = client.list(_verdict_dir(settings, table))
    except WebHdfsError as exc:
        if exc.status == 404:
            return {}
        raise
    found = {}
    for entry in entries:
        match = _VERDICT_FILE.match(entry.get("pathSuffix", ""))
        if match:
            partition = Partition.parse(f"{table}/{match['folder']}")
            found[partition] = match["outcome"] == "passed"
    return found


def read_verdict(client: WebHdfs, settings: Settings, partition: Partition) -> Verdict | None:
    folder = _verdict_dir(settings, partition.table)
    for outcome in ("failed", "passed"):
        try:
            return Verdict.from_json(
                client.read_text(f"{folder}/{_verdict_name(partition, outcome)}")
            )
        except WebHdfsError as exc:
            if exc.status != 404:
                raise
    return None


def trusted_partitions(client: WebHdfs, settings: Settings, table: str) -> list[dt.date]:
    """The dates of ``table`` that passed validation: the only ones readers may use."""
    return sorted(p.day for p, passed in verdicts(client, settings, table).items() if passed)


def read_trusted(spark: SparkSession, settings: Settings, table: str) -> DataFrame | None:
    """``table`` restricted to its trusted partitions (None when it has none yet)."""
    from pyspark.sql import functions as F

    from lakepulse.lake import read_table

    days = trusted_partitions(WebHdfs(settings.hdfs), settings, table)
    frame = read_table(spark, settings, table) if days else None
    if frame is None:
        return None
    column = VALIDATED_TABLES[table].partition_column
    return frame.where(F.col(column).isin(days))


def quarantine(client: WebHdfs, settings: Settings, partition: Partition, stamp: str) -> str | None:
    """Move a failed partition out of its table; returns where it went (None: marked only)."""
    if not partition.spec.movable:
        return None
    source = _hdfs_path(partition.path(settings))
    if not client.exists(source):
        return None
    folder = f"{quarantine_root(settings)}/{partition.key}"
    destination = f"{folder}/{re.sub(r'[^A-Za-z0-9_.-]', '_', stamp)}"
    client.mkdirs(folder)
    if not client.rename(source, destination):
        raise WebHdfsError(
            "RENAME", source, None, f"the NameNode refused to move it to {destination}"
        )
    return destination
