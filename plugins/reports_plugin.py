"""Airflow plugin: the API server serves the daily reports at ``/reports/`` (the dashboard of
key metrics and trends, one page per day), and the UI's Browse menu links there
("Daily reports").

The ``daily_report`` DAG publishes each day's page into ``<data_dir>/reports/<day>/``. Like
the rest of this deployment the API server listens on loopback; the pages show operational
numbers, so put the server behind authentication before exposing it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/reports"  # lakepulse.reports.daily.URL_PREFIX (not imported: keep parsing light)


def reports_app():
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from lakepulse.reports.daily import reports_root
    from lakepulse.settings import get_settings

    directory = reports_root(get_settings())
    directory.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="Lakepulse daily reports")
    app.mount("/", StaticFiles(directory=directory, html=True, check_dir=False), name="reports")
    return app


class LakepulseReportsPlugin(AirflowPlugin):
    name = "lakepulse_reports"
    fastapi_apps: ClassVar[list[Any]] = [
        {"app": reports_app(), "url_prefix": URL_PREFIX, "name": "Lakepulse daily reports"}
    ]
    external_views: ClassVar[list[Any]] = [
        {"name": "Daily reports", "href": f"{URL_PREFIX}/index.html", "destination": "nav",
         "category": "browse"},
    ]  # fmt: skip
