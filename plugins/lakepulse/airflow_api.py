"""A small client for Airflow's REST API (v2): log in, trigger a DAG, follow its run.

    from lakepulse.airflow_api import AirflowApi
    api = AirflowApi.for_settings(get_settings())
    run = api.trigger("backfill", {"start": "2026-11-20", "end": "2026-11-21"})
    api.wait_for_run("backfill", run["dag_run_id"])

The token comes from ``POST /auth/token`` with the user's name and password (the generated
admin password of the local deployment by default); it is renewed when the server says 401.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from lakepulse.settings import Settings

FINISHED = {"success", "failed"}


class AirflowApiError(RuntimeError):
    """Airflow answered with an error; the message carries its status and detail."""


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> AirflowApi:
        from lakepulse.services.airflow import admin_password

        return cls(settings.airflow.url, settings.airflow.admin_user, admin_password(settings))

    def token(self) -> str:
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=self.timeout,
        )
        if response.status_code not in (200, 201):
            status, detail = response.status_code, response.text[:300]
            raise AirflowApiError(f"login as {self.username!r} refused ({status}): {detail}")
        self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        extra_headers = kwargs.pop("headers", {})  # e.g. Accept; the token is added here
        for attempt in range(2):
            headers = {**extra_headers, "Authorization": f"Bearer {self._token or self.token()}"}
            response = self.session.request(
                method, f"{self.base_url}{path}", headers=headers, timeout=self.timeout, **kwargs
            )
            if response.status_code == 401 and attempt == 0:
                self._token = None  # expired: log in again once
                continue
            if not response.ok:
                raise AirflowApiError(
                    f"{method} {path} answered {response.status_code}: {response.text[:500]}"
                )
            return response.json() if response.content else None
        raise AssertionError("unreachable")

    def trigger(self, dag_id: str, conf: dict | None = None) -> dict:
        """Start a run now with ``conf`` as its parameters; returns the new run."""
        body = {"logical_date": None, "conf": conf or {}}
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def runs(self, dag_id: str, limit: int = 50) -> list[dict]:
        found = self.request(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns",
            params={"limit": limit, "order_by": "-run_after"},
        )
        return found["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        found = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return found["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        found = self.request(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            headers={"Accept": "application/json"},
        )
        content = found.get("content", "")
        if isinstance(content, list):  # structured log lines
            return "\n".join(str(line.get("event", line)) if isinstance(line, dict) else str(line)
                             for line in content)  # fmt: skip
        return str(content)

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 900.0,
        interval: float = 5.0,
        on_poll: Callable[[dict], None] | None = None,
    ) -> dict:
        """Poll until the run has finished; returns it (its ``state`` says how)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if on_poll is not None:
                on_poll(run)
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f}s"
                )
            time.sleep(interval)
