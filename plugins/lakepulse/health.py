"""Health checks of the platform's parts, on plain endpoints.

Each check returns a :class:`Health` whose detail says what was seen, so that a failure names
the broken part and the evidence. Airflow tasks call these through hooks (which turn
connections into endpoints); `lakepulse status` calls them with settings.
"""

from __future__ import annotations

from typing import Any

import requests

from lakepulse.services.process import Health
from lakepulse.streaming_status import current_state
from lakepulse.webhdfs import WebHdfs


class PartUnhealthy(RuntimeError):
    """A part of the platform failed its health check; the message names it and what was seen."""


def require(part: str, health: Health) -> str:
    """Raise :class:`PartUnhealthy` naming ``part`` unless ``health`` is ok; return the detail."""
    if not health.ok:
        raise PartUnhealthy(f"{part} is unhealthy: {health.detail}")
    return f"{part}: {health.detail}"


def check_kafka(admin: Any, topic: str, timeout: float = 10.0) -> Health:
    """Broker metadata through a confluent-kafka AdminClient, and the topic's presence."""
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return Health(False, f"no broker metadata within {timeout:.0f}s: {exc.args[0]}")
    brokers = len(metadata.brokers)
    if brokers == 0:
        return Health(False, "metadata lists no broker")
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return Health(False, f"{brokers} broker(s), but topic {topic!r} is missing")
    return Health(True, f"{brokers} broker(s), topic {topic!r} with {len(found.partitions)} "
                  "partitions")  # fmt: skip


def check_namenode(http_url: str, min_free_bytes: int = 1 << 30) -> Health:
    """NameNode state, live DataNodes and free capacity from the NameNode's JMX servlet."""
    url = f"{http_url.rstrip('/')}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
    try:
        response = requests.get(url, timeout=10)
        response.raise_for_status()
        beans = response.json()["beans"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        return Health(False, f"NameNode at {http_url} not answering: {exc}")
    if not beans:
        return Health(False, f"NameNode at {http_url} reports no FSNamesystemState")
    state = beans[0]
    live = int(state.get("NumLiveDataNodes", 0))
    free = int(state.get("CapacityRemaining", 0))
    fs_state = state.get("FSState", "unknown")
    detail = f"NameNode {fs_state}, {live} live DataNode(s), {free / 2**30:.1f} GiB free"
    ok = fs_state == "Operational" and live > 0 and free >= min_free_bytes
    return Health(ok, detail)


def check_streaming_job(client: WebHdfs, status_dir: str, timeout_seconds: float) -> Health:
    """Alive (fresh heartbeat), and no event lost to the watermark (late ones must be kept)."""
    state = current_state(client, status_dir, timeout_seconds)
    if not state.alive:
        return Health(False, state.reason)
    counts = (state.heartbeat or {}).get("counts") or {}
    if counts.get("dropped_by_watermark"):
        return Health(False, f"{counts['dropped_by_watermark']} events dropped by Spark's "
                      "watermark instead of landing in late_events")  # fmt: skip
    summary = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "dropped_by_watermark")
    return Health(True, f"{state.reason}; since start: {summary or 'nothing yet'}")


def check_http(name: str, url: str, expect_json_key: str | None = None) -> Health:
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException as exc:
        return Health(False, f"{name} at {url} not answering: {exc}")
    if not response.ok:
        return Health(False, f"{name} at {url} answered HTTP {response.status_code}")
    return Health(True, f"{name} answered HTTP {response.status_code}")


def check_airflow(base_url: str) -> Health:
    """Airflow's own health report: metadata database, scheduler, triggerer, dag-processor."""
    url = f"{base_url.rstrip('/')}/api/v2/monitor/health"
    try:
        response = requests.get(url, timeout=10)
        response.raise_for_status()
        report = response.json()
    except (requests.RequestException, ValueError) as exc:
        return Health(False, f"Airflow API server at {base_url} not answering: {exc}")
    parts = {name: (report.get(name) or {}).get("status") for name in report}
    unhealthy = {name: state for name, state in parts.items() if state != "healthy"}
    if unhealthy:
        return Health(
            False, "unhealthy components: " + ", ".join(f"{k}={v}" for k, v in unhealthy.items())
        )
    return Health(True, "all healthy: " + ", ".join(sorted(parts)))
