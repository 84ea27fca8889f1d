"""Structured logs for Lakepulse's own code: one JSON object a line.

Every record carries ``component`` and ``run_id``: ``LAKEPULSE_RUN_ID`` when set, else the
Airflow DAG run id when running inside a task (Airflow exports it as AIRFLOW_CTX_DAG_RUN_ID, and
jobs the task submits inherit it), else an id of this process. So the lines of one DAG run can
be found across processes, Spark drivers included.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from typing import Any

import orjson

_PROCESS_RUN_ID = uuid.uuid4().hex[:12]
_STD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def run_id() -> str:
    # Read per record: Airflow exports its context after this module was imported.
    return (
        os.environ.get("LAKEPULSE_RUN_ID")
        or os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
        or _PROCESS_RUN_ID
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": getattr(record, "component", record.name),
            "run_id": getattr(record, "run_id", None) or run_id(),
            "msg": record.getMessage(),
        }
        if task := os.environ.get("AIRFLOW_CTX_TASK_ID"):
            payload["airflow_task"] = f"{os.environ.get('AIRFLOW_CTX_DAG_ID')}.{task}"
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class StructuredLogger(logging.LoggerAdapter):
    """``log.info("started", service="kafka", pid=12)``: keyword arguments become fields."""

    def process(self, msg: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in {"exc_info", "stack_info"}}
        kwargs["extra"] = {**self.extra, **fields}
        return msg, kwargs


def _configure() -> None:
    root = logging.getLogger("lakepulse")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(os.environ.get("LAKEPULSE_LOG_LEVEL", "INFO").upper())
    # Airflow's task log handler also captures these when propagating; one copy is enough.
    root.propagate = False


def get_logger(component: str) -> StructuredLogger:
    _configure()
    return StructuredLogger(logging.getLogger(f"lakepulse.{component}"), {"component": component})
