"""The lake's partitions as units of validation, and when the stream has closed one.

A partition is validated once the streaming job will not write to it again: its event-time
watermark (from the job's heartbeat) has passed the partition's end. Raw events are
validated per ``event_date`` (all its hours together); curated events per ``event_date``;
the aggregates per ``window_date``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from lakepulse.settings import Settings
from lakepulse.webhdfs import WebHdfs, WebHdfsError


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_column: str
    # The streaming query whose watermark closes the partitions, and how long after the end of
    # the day the last write into it can come (the 5-minute sliding windows reach 4 minutes on).
    closing_query: str
    reach: dt.timedelta = dt.timedelta(0)
    # True for a plain directory the quarantine may move a partition out of; the raw zone is a
    # file sink whose log lists its files, so its bad partitions are marked, never moved.
    movable: bool = True


VALIDATED_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("raw_events", "event_date", "ingest_events_curate", movable=False),
        TableSpec("events", "event_date", "ingest_events_curate"),
        TableSpec("events_agg_1m", "window_date", "ingest_events_aggregate"),
        TableSpec(
            "events_agg_5m", "window_date", "ingest_events_aggregate", dt.timedelta(minutes=4)
        ),
    )
}

_DIR = re.compile(r"^(?P<column>[a-z_]+)=(?P<value>\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class Partition:
    table: str
    day: dt.date

    @property
    def spec(self) -> TableSpec:
        return VALIDATED_TABLES[self.table]

    @property
    def key(self) -> str:
        """``<table>/<column>=<date>``: the partition's name in verdicts and the quarantine."""
        return f"{self.table}/{self.spec.partition_column}={self.day.isoformat()}"

    @property
    def end(self) -> dt.datetime:
        """When the stream's watermark must have passed for nothing more to land here."""
        midnight = dt.datetime.combine(self.day + dt.timedelta(days=1), dt.time(), dt.UTC)
        return midnight + self.spec.reach

    def path(self, settings: Settings) -> str:
        """The partition's directory (an HDFS URI)."""
        from lakepulse.lake import TABLES

        folder = f"{self.spec.partition_column}={self.day.isoformat()}"
        return f"{TABLES[self.table].path(settings)}/{folder}"

    @classmethod
    def parse(cls, key: str) -> Partition:
        """The inverse of :attr:`key`; a clear error for anything else."""
        table, _, folder = key.partition("/")
        match = _DIR.match(folder)
        if table not in VALIDATED_TABLES or not match:
            raise ValueError(
                f"{key!r} is not a partition: expected <table>/<column>=<YYYY-MM-DD> with a "
                f"table among {', '.join(VALIDATED_TABLES)}"
            )
        if match["column"] != VALIDATED_TABLES[table].partition_column:
            raise ValueError(
                f"{key!r}: {table} is partitioned by {VALIDATED_TABLES[table].partition_column}"
            )
        return cls(table, dt.date.fromisoformat(match["value"]))


def _hdfs_path(uri: str) -> str:
    """The path part of an hdfs:// URI, as WebHDFS wants it."""
    return "/" + uri.split("://", 1)[1].split("/", 1)[1] if "://" in uri else uri


def list_partitions(client: WebHdfs, settings: Settings, table: str) -> list[Partition]:
    """The date partitions a table has in HDFS now (none when it has no data yet)."""
    from lakepulse.lake import TABLES

    try:
        entries = client.list(_hdfs_path(TABLES[table].path(settings)))
    except WebHdfsError as exc:
        if exc.status == 404:
            return []
        raise
    column = VALIDATED_TABLES[table].partition_column
    found = []
    for entry in entries:
        match = _DIR.match(entry.get("pathSuffix", ""))
        if entry.get("type") == "DIRECTORY" and match and match["column"] == column:
            found.append(Partition(table, dt.date.fromisoformat(match["value"])))
    return sorted(found)


def watermarks(heartbeat: dict | None) -> dict[str, dt.datetime]:
    """Each streaming query's event-time watermark, from the job's heartbeat."""
    found = {}
    for name, query in ((heartbeat or {}).get("queries") or {}).items():
        mark = query.get("watermark")
        if mark:
            moment = dt.datetime.fromisoformat(mark.replace("Z", "+00:00"))
            # Spark reports the epoch while no event has set a watermark yet.
            if moment.year > 1970:
                found[name] = moment
    return found


def is_closed(partition: Partition, marks: dict[str, dt.datetime]) -> bool:
    mark = marks.get(partition.spec.closing_query)
    return mark is not None and mark >= partition.end


def closed_partitions(
    client: WebHdfs, settings: Settings, heartbeat: dict | None, tables: list[str] | None = None
) -> list[Partition]:
    """Partitions in HDFS that the streaming job has closed, oldest first."""
    marks = watermarks(heartbeat)
    return sorted(
        partition
        for table in tables or list(VALIDATED_TABLES)
        for partition in list_partitions(client, settings, table)
        if is_closed(partition, marks)
    )
