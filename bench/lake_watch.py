"""Sees rows become visible in the lake's tables, from outside the job (WebHDFS + pyarrow).

- ``raw_events`` is a Spark file sink: a file is visible to readers once its batch is committed
  in ``_spark_metadata`` (files on disk before that are not read by anyone), so new files are
  taken from the entries of new log files (``<batch>`` and ``<batch>.compact``).
- ``events`` (curated) is written per batch and its files are renamed into the
  ``event_date=*`` partitions: a file is visible once listed there.

A poller thread lists both tables every ``interval`` seconds and records when it first saw
each file (the time the listing answered). That is an upper bound of the moment the rows
became visible, off by at most one polling cycle: the cycle's duration is the resolution, and
is recorded. Reading the files (only the Kafka columns) happens in the caller's thread.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakepulse.settings import HdfsSettings
from lakepulse.webhdfs import WebHdfs, WebHdfsError

RAW = "raw_events"
CURATED = "events"
_LOG_FILE = re.compile(r"^\d+(\.compact)?$")
_KAFKA_COLUMNS = ["kafka_partition", "kafka_offset"]


@dataclass(frozen=True)
class Sighting:
    table: str
    path: str
    seen_at: float  # epoch seconds, this host's clock (the one Kafka timestamps come from)


def hdfs_path(uri: str) -> str:
    """The plain path of an ``hdfs://host:port/path`` URI (or of a plain path)."""
    return unquote(urlsplit(uri).path) if "://" in uri else uri


def _visible_name(name: str) -> bool:
    return not name.startswith(("_", "."))


class SinkLog:
    """New files of a Spark file sink, from its ``_spark_metadata`` log."""

    def __init__(self, client: WebHdfs, table_dir: str) -> None:
        self.client = client
        self.log_dir = f"{table_dir.rstrip('/')}/_spark_metadata"
        self.read_logs: set[str] = set()
        self.files: set[str] = set()

    def poll(self) -> list[str]:
        try:
            entries = self.client.list(self.log_dir)
        except WebHdfsError as exc:
            if exc.status == 404:
                return []
            raise
        names = sorted(
            (e["pathSuffix"] for e in entries if _LOG_FILE.match(e["pathSuffix"])),
            key=lambda name: int(name.split(".")[0]),
        )
        new: list[str] = []
        for name in names:
            if name in self.read_logs:
                continue
            new += self._added_files(self.client.read_text(f"{self.log_dir}/{name}"))
            self.read_logs.add(name)
        return new

    def _added_files(self, text: str) -> list[str]:
        added = []
        for line in text.splitlines()[1:]:  # line 1 is the log format version
            entry = json.loads(line)
            path = hdfs_path(entry["path"])
            if entry.get("action", "add") == "add" and path not in self.files:
                self.files.add(path)
                added.append(path)
        return added


class PartitionedDir:
    """New Parquet files in the partition folders of a table written by renames."""

    def __init__(self, client: WebHdfs, table_dir: str) -> None:
        self.client = client
        self.table_dir = table_dir.rstrip("/")
        self.files: set[str] = set()

    def _list(self, path: str) -> list[dict]:
        try:
            return self.client.list(path)
        except WebHdfsError as exc:
            if exc.status == 404:
                return []
            raise

    def poll(self) -> list[str]:
        new = []
        for folder in self._list(self.table_dir):
            name = folder["pathSuffix"]
            if folder["type"] != "DIRECTORY" or not _visible_name(name):
                continue
            for entry in self._list(f"{self.table_dir}/{name}"):
                path = f"{self.table_dir}/{name}/{entry['pathSuffix']}"
                if entry["pathSuffix"].endswith(".parquet") and path not in self.files:
                    self.files.add(path)
                    new.append(path)
        return new


class Poller(threading.Thread):
    """Lists the tables every ``interval`` seconds; puts a :class:`Sighting` per new file."""

    def __init__(
        self, client: WebHdfs, raw_dir: str, curated_dir: str | None, interval: float
    ) -> None:
        super().__init__(name="lake-poller", daemon=True)
        self.sources: list[tuple[str, SinkLog | PartitionedDir]] = [(RAW, SinkLog(client, raw_dir))]
        if curated_dir is not None:
            self.sources.append((CURATED, PartitionedDir(client, curated_dir)))
        self.interval = interval
        self.sightings: queue.Queue[Sighting] = queue.Queue()
        self.cycle_seconds: list[float] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            for table, source in self.sources:
                try:
                    paths = source.poll()
                except (WebHdfsError, ValueError) as exc:  # a hiccup: try again next cycle
                    self.errors.append(f"{table}: {exc}"[:300])
                    continue
                seen_at = time.time()
                for path in paths:
                    self.sightings.put(Sighting(table, path, seen_at))
            self.cycle_seconds.append(time.monotonic() - started)
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def take(self) -> list[Sighting]:
        """Every sighting queued so far."""
        taken = []
        while True:
            try:
                taken.append(self.sightings.get_nowait())
            except queue.Empty:
                return taken

    def resolution(self) -> dict[str, float]:
        """Interval between two listings of a table: median and 99th percentile, seconds."""
        cycles = np.maximum(np.array(self.cycle_seconds or [0.0]), self.interval)
        return {
            "median_s": round(float(np.median(cycles)), 3),
            "p99_s": round(float(np.percentile(cycles, 99)), 3),
            "max_s": round(float(cycles.max()), 3),
        }


def _epoch_seconds(column: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column (any unit) as float epoch seconds."""
    micros = pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False)
    return micros.cast(pa.int64()).to_numpy() / 1e6


@dataclass
class TableRows:
    """What was seen of one table: per row its Kafka partition and offset, when it was seen
    and (raw only) its Kafka timestamp, the time it was produced."""

    name: str
    _chunks: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    count: int = 0  # every row seen since the start, forgotten ones included
    # Highest offset seen per partition: a batch covers the next offsets of every partition,
    # so the rows seen of a partition are all its offsets up to this one.
    last_offset: dict[int, int] = field(default_factory=dict)

    def add(self, data: bytes, seen_at: float) -> int:
        columns = _KAFKA_COLUMNS + (["kafka_timestamp"] if self.name == RAW else [])
        table = pq.read_table(pa.BufferReader(data), columns=columns)
        partition = table.column("kafka_partition").to_numpy().astype(np.int32)
        offset = table.column("kafka_offset").to_numpy().astype(np.int64)
        seen = np.full(len(offset), seen_at)
        produced = (
            _epoch_seconds(table.column("kafka_timestamp"))
            if self.name == RAW
            else np.full(len(offset), np.nan)
        )
        self._chunks.append((partition, offset, seen, produced))
        self.count += len(offset)
        for p in np.unique(partition):
            last = int(offset[partition == p].max())
            self.last_offset[int(p)] = max(last, self.last_offset.get(int(p), -1))
        return len(offset)

    def reached(self, ends: Mapping[int, int]) -> bool:
        """Whether rows up to the end offsets ``ends`` (partition -> next offset) were seen."""
        return all(self.last_offset.get(p, -1) >= end - 1 for p, end in ends.items() if end > 0)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(partition, offset, seen_at, produced_at) of every row seen and not forgotten."""
        if not self._chunks:
            empty = np.array([])
            return empty.astype(np.int32), empty.astype(np.int64), empty, empty
        partition, offset, seen, produced = (
            np.concatenate(c) for c in zip(*self._chunks, strict=True)
        )
        return partition, offset, seen, produced

    def forget(self) -> None:
        """Drop the rows kept so far (counts stay): a step's figures are computed."""
        self._chunks.clear()


class LakeWatch:
    """The poller plus the rows read from the files it found.

    ``raw_dir`` and ``curated_dir`` may be ``hdfs://`` URIs. The poller thread gets a client of
    its own (an HTTP session is not shared between threads).
    """

    def __init__(
        self, hdfs: HdfsSettings, raw_dir: str, curated_dir: str | None, interval: float
    ) -> None:
        self.client = WebHdfs(hdfs, timeout=10.0)
        self.poller = Poller(
            WebHdfs(hdfs, timeout=10.0),
            hdfs_path(raw_dir),
            None if curated_dir is None else hdfs_path(curated_dir),
            interval,
        )
        self.tables = {RAW: TableRows(RAW)}
        if curated_dir is not None:
            self.tables[CURATED] = TableRows(CURATED)

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()

    def absorb(self) -> int:
        """Read the files sighted since the last call; returns the rows added."""
        added = 0
        # Raw first: a curated row's production time is looked up in the raw rows.
        for sighting in sorted(self.poller.take(), key=lambda s: s.table != RAW):
            data = self.client.read_bytes(sighting.path)
            added += self.tables[sighting.table].add(data, sighting.seen_at)
        return added

    def forget(self) -> None:
        for rows in self.tables.values():
            rows.forget()

    @property
    def has_curated(self) -> bool:
        return CURATED in self.tables

    @property
    def primary(self) -> str:
        """The table the end-to-end figures are for: curated ``events`` when it exists."""
        return CURATED if self.has_curated else RAW
