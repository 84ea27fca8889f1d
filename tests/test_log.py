"""Lakepulse's own logs: one JSON object a line, with component and run id."""

from __future__ import annotations

import json
import logging

import pytest

from lakepulse.log import JsonFormatter, get_logger

pytestmark = pytest.mark.platform


def _format(monkeypatch, env: dict[str, str], **fields) -> dict:
    for key in ("LAKEPULSE_RUN_ID", "AIRFLOW_CTX_DAG_RUN_ID", "AIRFLOW_CTX_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = get_logger("ingest")
    log.logger.addHandler(handler)
    try:
        log.info("batch written", **fields)
    finally:
        log.logger.removeHandler(handler)
    return json.loads(JsonFormatter().format(records[0]))


def test_a_record_is_json_with_component_run_id_and_fields(monkeypatch):
    line = _format(monkeypatch, {"LAKEPULSE_RUN_ID": "run-42"}, rows=17, table="raw_events")
    assert line["component"] == "ingest"
    assert line["run_id"] == "run-42"
    assert line["msg"] == "batch written"
    assert (line["rows"], line["table"]) == (17, "raw_events")


def test_inside_an_airflow_task_the_run_id_is_the_dag_run_id(monkeypatch):
    env = {"AIRFLOW_CTX_DAG_RUN_ID": "manual__2026-11-26", "AIRFLOW_CTX_DAG_ID": "backfill",
           "AIRFLOW_CTX_TASK_ID": "recompute"}  # fmt: skip
    line = _format(monkeypatch, env)
    assert line["run_id"] == "manual__2026-11-26"
    assert line["airflow_task"] == "backfill.recompute"
