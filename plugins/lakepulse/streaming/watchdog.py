"""Is a running streaming job healthy, stalled or falling behind? Decided from observations.

An observation pairs Kafka's end offsets with the offsets the job has committed (read from its
checkpoint in HDFS), so the verdict needs nothing from inside the job: a hung driver that
still answers heartbeats is caught too.

- stalled: data is waiting (lag > 0) and the committed offsets have not moved for
  ``stall_after_s`` seconds;
- lagging: the lag is above ``max_lag`` and has grown over the last ``growth_window_s``
  seconds (a lag that is large but shrinking is a job catching up, left alone).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lakepulse.webhdfs import WebHdfs, WebHdfsError


@dataclass(frozen=True)
class Observation:
    at: datetime
    committed: int  # sum over partitions of the offsets the job has committed
    end: int  # sum over partitions of the topic's end offsets

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def assess(
    observations: Sequence[Observation],
    *,
    stall_after_s: float,
    max_lag: int,
    growth_window_s: float,
) -> Verdict:
    """Judge the latest observation against the ones before it (oldest first)."""
    if not observations:
        return Verdict(True, "no observation yet")
    latest = observations[-1]
    if latest.lag > 0:
        unchanged_since = latest.at
        for earlier in reversed(observations[:-1]):
            if earlier.committed != latest.committed or earlier.lag == 0:
                break
            unchanged_since = earlier.at
        stalled_for = (latest.at - unchanged_since).total_seconds()
        if stalled_for >= stall_after_s:
            return Verdict(
                False,
                f"stalled: {latest.lag} events waiting and no offset committed for "
                f"{stalled_for:.0f}s (limit {stall_after_s:.0f}s)",
            )
    if latest.lag > max_lag:
        window = [o for o in observations if (latest.at - o.at).total_seconds() <= growth_window_s]
        spans_window = (latest.at - window[0].at).total_seconds() >= growth_window_s * 0.9
        growing = all(b.lag > a.lag for a, b in itertools.pairwise(window))
        if spans_window and len(window) >= 3 and growing:
            return Verdict(
                False,
                f"lagging: {latest.lag} events behind (limit {max_lag}) and growing for "
                f"{growth_window_s:.0f}s, from {window[0].lag}",
            )
    return Verdict(True, f"lag {latest.lag}, committed offset total {latest.committed}")


def committed_offsets(client: WebHdfs, checkpoint_dir: str, topic: str) -> dict[int, int] | None:
    """Offsets (partition -> next offset) of the last batch the query committed, or None.

    A checkpoint holds ``offsets/<batch>`` (planned) and ``commits/<batch>`` (done); the
    offsets of the newest committed batch are where the query's output is complete.
    """
    try:
        commits = [int(e["pathSuffix"]) for e in client.list(f"{checkpoint_dir}/commits")
                   if e["pathSuffix"].isdigit()]  # fmt: skip
    except WebHdfsError as exc:
        if exc.status == 404:
            return None
        raise
    if not commits:
        return None
    lines = client.read_text(f"{checkpoint_dir}/offsets/{max(commits)}").splitlines()
    # Line 1 is the log version, line 2 the batch metadata, then one line per source.
    for line in lines[2:]:
        offsets = json.loads(line) if line.startswith("{") else {}
        if topic in offsets:
            return {int(partition): int(offset) for partition, offset in offsets[topic].items()}
    return None


def offset_bounds(
    bootstrap_servers: str, topic: str, timeout: float = 10.0
) -> dict[int, tuple[int, int]]:
    """The topic's (earliest, end) offsets per partition: what Kafka still holds."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "lakepulse-watchdog",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = sorted(metadata.topics[topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            for p in partitions
        }
    finally:
        consumer.close()


def end_offsets(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The topic's end offsets (partition -> next offset to be written)."""
    return {p: end for p, (_, end) in offset_bounds(bootstrap_servers, topic, timeout).items()}


def observe(
    client: WebHdfs, checkpoint_dir: str, bootstrap_servers: str, topic: str, at: datetime
) -> Observation:
    ends = end_offsets(bootstrap_servers, topic)
    committed = committed_offsets(client, checkpoint_dir, topic) or {}
    return Observation(at, sum(committed.get(p, 0) for p in ends), sum(ends.values()))
