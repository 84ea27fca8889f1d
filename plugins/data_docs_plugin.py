"""Airflow plugin: the API server serves Great Expectations' Data Docs at ``/data-docs/``, and
the UI's Browse menu links there ("Data Docs").

The ``data_quality`` DAG rebuilds the docs on every run into ``<data_dir>/quality/data_docs``.
Like the rest of this deployment the API server listens on loopback; the docs include sample
rows, so put the server behind authentication before exposing it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/data-docs"


def data_docs_app():
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from lakepulse.settings import get_settings

    directory = get_settings().data_docs_dir
    directory.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="Lakepulse Data Docs")
    app.mount("/", StaticFiles(directory=directory, html=True, check_dir=False), name="data-docs")
    return app


class LakepulseDataDocsPlugin(AirflowPlugin):
    name = "lakepulse_data_docs"
    fastapi_apps: ClassVar[list[Any]] = [
        {"app": data_docs_app(), "url_prefix": URL_PREFIX, "name": "Lakepulse Data Docs"}
    ]
    external_views: ClassVar[list[Any]] = [
        {"name": "Data Docs", "href": f"{URL_PREFIX}/index.html", "destination": "nav",
         "category": "browse"},
    ]  # fmt: skip
