"""The UIs in a real browser: headless Chromium (Debian's package) driven by Playwright.

Log in to the Airflow UI, see the Lakepulse DAGs, trigger one and watch its run finish; open
the MLflow UI and see the experiment's runs. Screenshots go to tests/artifacts/browser/.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.platform, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "browser"
LAKEPULSE_DAGS = ("backfill", "cluster_health", "compact_lake", "daily_report", "data_quality",
                  "streaming_supervisor")  # fmt: skip
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make system-deps` installs Debian's package")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # Playwright cannot download its own browser here; root in a container needs no sandbox.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    # The last state of every test is kept, passed or failed, for whoever reads the run.
    page.screenshot(path=SCREENSHOTS / f"{request.node.name}-last.png", full_page=True)
    context.close()


def _log_in(page, settings) -> None:
    from lakepulse.services.airflow import admin_password

    page.goto(f"{settings.airflow.url}/")
    page.get_by_label("Username").fill(settings.airflow.admin_user)
    page.get_by_label("Password").fill(admin_password(settings))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{settings.airflow.url}/")


def test_airflow_ui_login_lists_the_dags_and_runs_a_triggered_one(page, job_running):
    """cluster_health, triggered from the UI, checks the whole stack: the streaming job too."""
    from lakepulse.airflow_api import AirflowApi

    settings = job_running
    page.goto(f"{settings.airflow.url}/dags")
    page.wait_for_url(re.compile(r"/auth/login"))  # nothing without logging in
    _log_in(page, settings)
    page.goto(f"{settings.airflow.url}/dags")
    for dag_id in LAKEPULSE_DAGS:
        page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
    page.screenshot(path=SCREENSHOTS / "airflow-dags.png", full_page=True)

    page.goto(f"{settings.airflow.url}/dags/cluster_health")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Trigger Dag - cluster_health").wait_for()
    page.screenshot(path=SCREENSHOTS / "airflow-trigger.png")
    with page.expect_response(
        lambda r: r.url.endswith("/dags/cluster_health/dagRuns") and r.request.method == "POST"
    ) as answer:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    assert answer.value.status == 200, answer.value.text()
    run_id = answer.value.json()["dag_run_id"]

    # The run's page shows its state badge beside the run id (both in the heading's parent).
    run_page = f"{settings.airflow.url}/dags/cluster_health/runs/{quote(run_id)}"
    page.goto(run_page)
    header = page.get_by_role("heading", name=run_id).first.locator("xpath=..")
    deadline = time.monotonic() + 480  # behind a scheduled run on a busy machine
    while not re.search(r"\b(Success|Failed)\b", header.inner_text()):
        assert time.monotonic() < deadline, f"run {run_id} shown as {header.inner_text()!r}"
        page.wait_for_timeout(3000)  # a poll interval: the loop checks the page each time
        page.goto(run_page)
        header = page.get_by_role("heading", name=run_id).first.locator("xpath=..")
    shown = re.search(r"\b(Success|Failed)\b", header.inner_text()).group(1)
    page.screenshot(path=SCREENSHOTS / "airflow-run.png", full_page=True)
    api_state = AirflowApi.for_settings(settings).run("cluster_health", run_id)["state"]
    assert shown.lower() == api_state  # the UI shows what the API knows
    assert api_state == "success", f"cluster_health found a broken part: see {run_id}"


def test_mlflow_ui_shows_the_experiments_runs(page, platform):
    from mlflow import MlflowClient

    settings = platform
    client = MlflowClient(settings.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    experiment_id = (experiment.experiment_id if experiment
                     else client.create_experiment(settings.mlflow.experiment))  # fmt: skip
    run_name = f"browser-check-{uuid.uuid4().hex[:6]}"
    run = client.create_run(experiment_id, run_name=run_name)
    client.log_metric(run.info.run_id, "mae", 1.25)
    client.set_terminated(run.info.run_id)
    all_runs = client.search_runs([experiment_id], max_results=20)

    page.goto(f"{settings.mlflow.tracking_uri}/")
    page.get_by_role("link", name=settings.mlflow.experiment, exact=True).first.wait_for()
    page.screenshot(path=SCREENSHOTS / "mlflow-home.png")
    page.goto(f"{settings.mlflow.tracking_uri}/#/experiments/{experiment_id}/runs")
    page.get_by_text(run_name, exact=True).first.wait_for()
    for other in all_runs[:5]:  # the experiment's other runs (training, if any) are listed too
        page.get_by_text(other.info.run_name, exact=True).first.wait_for()
    page.screenshot(path=SCREENSHOTS / "mlflow-runs.png", full_page=True)
    (SCREENSHOTS / "mlflow-runs.json").write_text(
        json.dumps([r.info.run_name for r in all_runs], indent=1)
    )
