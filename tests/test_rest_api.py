"""Airflow's REST API on the running platform, exactly as the README shows it.

The README's curl and Python examples are run as written (only the date and the deployment's
address change): get a token, trigger `backfill` with a date range, wait for success, read the
task log. The lake must then hold the recomputed aggregates the log reports. Without
credentials the API refuses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import wait_for

# Replays 2026 times: after the tests replaying NAB's original times (conftest).
pytestmark = [pytest.mark.platform, pytest.mark.integration, pytest.mark.event_time_now]

README = Path(__file__).resolve().parents[1] / "README.md"
README_DAY = "2026-11-25"  # the date the README's examples use


def readme_block(marker: str) -> str:
    """The fenced code block that follows ``<!-- example: marker -->`` in the README."""
    text = README.read_text()
    match = re.search(rf"<!-- example: {marker} -->\s*```\w*\n(.*?)```", text, re.S)
    assert match, f"README has no example {marker!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def closed_day(replayed_day, job_running, lake_spark) -> dt.date:
    """Yesterday, replayed whole (conftest.replayed_day), once the stream has closed it."""
    from lakepulse.streaming.recompute import RecomputeRefused, check_closed

    day, _ = replayed_day

    def closed() -> str:
        try:
            check_closed(lake_spark, job_running, day)
        except RecomputeRefused as exc:
            return str(exc)
        return "closed"

    wait_for(closed, lambda state: state == "closed", 300, f"aggregates closed for {day}")
    return day


def test_without_credentials_the_api_refuses(platform):
    url = platform.airflow.url
    assert requests.get(f"{url}/api/v2/dags", timeout=30).status_code == 401
    trigger = requests.post(f"{url}/api/v2/dags/backfill/dagRuns", timeout=30,
                            json={"logical_date": None, "conf": {}})  # fmt: skip
    assert trigger.status_code == 401
    forged = requests.get(f"{url}/api/v2/dags", timeout=30,
                          headers={"Authorization": "Bearer not-a-token"})  # fmt: skip
    assert forged.status_code == 403  # a token that does not verify: forbidden
    login = requests.post(f"{url}/auth/token", timeout=30,
                          json={"username": "admin", "password": "wrong"})  # fmt: skip
    assert login.status_code == 401


def test_the_readme_curl_example_triggers_backfill_and_reads_its_log(
    closed_day, replayed_day, job_running, lake_rows
):
    settings = job_running
    script = readme_block("rest-curl").replace(README_DAY, closed_day.isoformat())
    env = {**os.environ, "AIRFLOW_URL": settings.airflow.url,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                            text=True, env=env, timeout=600, cwd=README.parent)  # fmt: skip
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    run_json, log_json = [json.loads(line) for line in result.stdout.strip().splitlines()[-2:]]
    assert run_json["state"] == "success", run_json
    assert run_json["conf"] == {"start": str(closed_day), "end": str(closed_day)}
    content = log_json["content"]
    if isinstance(content, list):  # structured log lines
        content = "\n".join(str(line.get("event", line)) if isinstance(line, dict) else str(line)
                            for line in content)  # fmt: skip
    text = str(content)
    written = _written_rows(text)
    rows = lake_rows(f"select count(*), sum(count) from events_agg_1m "
                     f"where window_date = '{closed_day}'")  # fmt: skip
    assert written["events_agg_1m"][str(closed_day)] == rows[0][0] > 0
    assert rows[0][1] == replayed_day[1]  # every event of the day, counted once


def _written_rows(log: str) -> dict:
    """The JSON line spark/recompute_aggregates.py prints: rows written per table and date."""
    for line in log.splitlines():
        found = re.search(r'\{"start": .*"rows": .*\}', line)
        if found:
            return json.loads(found.group(0))["rows"]
    raise AssertionError(f"no recompute summary in the task log:\n{log[-3000:]}")


def test_the_readme_python_example_triggers_and_follows_a_run(closed_day, job_running):
    script = readme_block("rest-python").replace(README_DAY, closed_day.isoformat())
    # The example resolves the deployment from settings, as on an operator's machine; the
    # session's LAKEPULSE__* variables point it at the test deployment.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, cwd=README.parent)  # fmt: skip
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    lines = result.stdout.splitlines()
    assert lines[0] == "success", lines[:5]
    assert _written_rows("\n".join(lines[1:]))["events_agg_5m"][str(closed_day)] > 0
