"""Structured logs for Lakepulse's own code: one JSON object a line.

Every record carries ``component`` and ``run_id``; the run id comes from
``LAKEPULSE_RUN_ID`` (set by the Airflow tasks and the CLI) so that the lines of one run can be
found across processes.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from typing import Any

import orjson

_RUN_ID = os.environ.get("LAKEPULSE_RUN_ID") or uuid.uuid4().hex[:12]
_STD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def run_id() -> str:
    return _RUN_ID


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": getattr(record, "component", record.name),
            "run_id": getattr(record, "run_id", _RUN_ID),
            "msg": record.getMessage(),
        }
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
