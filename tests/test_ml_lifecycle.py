"""The models' life on the running platform: real traffic series are replayed, data_quality
passes their days, ml_retrain (triggered through the REST API) trains and records them in
MLflow and registers a champion; a challenger is promoted only when better; live scoring (the
scoring_supervisor's job) writes forecasts and anomaly scores with the model version to
`predictions`, sends anomalies to Kafka, and picks up a new champion without a restart.

The series' original 2015 times are kept (the session's event time must not reach "now"
before the tests marked event_time_now)."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import wait_for

from lakepulse.quality import verdicts as store
from lakepulse.streaming_status import read_heartbeat
from lakepulse.webhdfs import WebHdfs

pytestmark = [pytest.mark.ml, pytest.mark.integration]

SOURCES = [
    "realTraffic/speed_6005",
    "realTraffic/speed_t4013",
    "realTraffic/occupancy_t4013",
    "realTraffic/occupancy_6005",
]
LIMIT = 3600  # about three days of the four series
DEADLINE_S = 900


def _in(sources: list[str]) -> str:
    return ", ".join(f"'{s}'" for s in sources)


@pytest.fixture(scope="module")
def mlflow_client(job_running):
    import mlflow

    mlflow.set_tracking_uri(job_running.mlflow.tracking_uri)
    return mlflow.MlflowClient()


@pytest.fixture(scope="module")
def api(job_running):
    from lakepulse.airflow_api import AirflowApi

    return AirflowApi.for_settings(job_running)


@pytest.fixture(scope="module")
def history(job_running):
    from lakepulse.producer import produce

    settings = job_running
    report = produce(settings, sources=",".join(SOURCES), speedup=0, limit=LIMIT, rebase=False,
                     progress=False, collect_ids=True)  # fmt: skip
    assert report.ok, report.as_dict()
    client = WebHdfs(settings.hdfs)
    wait_for(lambda: [d for d in store.trusted_partitions(client, settings, "events")
                      if d.year == 2015],
             lambda days: len(days) >= 3, DEADLINE_S,
             "data_quality passing the replayed days")  # fmt: skip
    return report


def _retrain(api, conf: dict) -> str:
    run = api.trigger("ml_retrain", conf)
    done = api.wait_for_run("ml_retrain", run["dag_run_id"], timeout=DEADLINE_S)
    log = api.task_log("ml_retrain", run["dag_run_id"], "train_evaluate_promote")
    assert done["state"] == "success", log[-3000:]
    return run["dag_run_id"]


@pytest.fixture(scope="module")
def first_retrain(history, api) -> str:
    return _retrain(api, {"models": ["linear_regression", "gbt"], "sources": SOURCES,
                          "reason": "test", "test_fraction": 0.2})  # fmt: skip


def _runs_of(mlflow_client, settings, airflow_run_id: str) -> list:
    experiment = mlflow_client.get_experiment_by_name(settings.mlflow.experiment)
    return mlflow_client.search_runs(
        [experiment.experiment_id], f"tags.`lakepulse.airflow_run_id` = '{airflow_run_id}'"
    )


def test_a_training_run_is_recorded_with_its_model_registered(first_retrain, mlflow_client,
                                                              job_running):  # fmt: skip
    from lakepulse.ml.registry import CHAMPION

    settings = job_running
    runs = _runs_of(mlflow_client, settings, first_retrain)
    parents = [r for r in runs if r.info.run_name.startswith("retrain")]
    children = {r.data.tags.get("lakepulse.kind"): r for r in runs if r not in parents}
    assert len(parents) == 1 and set(children) == {"linear_regression", "gbt"}
    parent = parents[0]
    assert parent.data.params["test_fraction"] == "0.2"
    assert parent.data.tags["lakepulse.reason"] == "test"
    for kind, child in children.items():
        metrics = child.data.metrics
        assert {"mae", "rmse", "mase", "naive_mae", "naive_rmse"} <= set(metrics), kind
        assert metrics["mase"] == pytest.approx(metrics["mae"] / metrics["naive_mae"])
        assert metrics["test_rows"] > 100
        artifacts = {a.path for a in mlflow_client.list_artifacts(child.info.run_id)}
        assert {"model", "charts", "source_stats.json", "lake_snapshot.json",
                "data_quality.json"} <= artifacts, artifacts  # fmt: skip
        charts = {a.path for a in mlflow_client.list_artifacts(child.info.run_id, "charts")}
        assert charts == {"charts/forecast_vs_actual.png", "charts/residuals.png"}
    import mlflow

    snapshot = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/lake_snapshot.json")
    assert any(day.startswith("2015-09") for day in snapshot["partitions"])
    quality = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/data_quality.json")
    assert quality and all(v and v["passed"] for v in quality.values())
    champion = mlflow_client.get_model_version_by_alias(settings.ml.registered_model, CHAMPION)
    assert champion.run_id in {c.info.run_id for c in children.values()}


def test_a_challenger_is_promoted_only_when_it_beats_the_champion(first_retrain, api,
                                                                   mlflow_client, job_running,
                                                                   lake_spark):  # fmt: skip
    import mlflow
    import mlflow.spark
    from pyspark.sql import functions as F

    from lakepulse.ml.features import scale, stats_as_dict
    from lakepulse.ml.registry import CHALLENGER, CHAMPION, decide
    from lakepulse.ml.training import TrainingConfig, make_pipeline, prepare

    settings = job_running
    name = settings.ml.registered_model
    champion = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    events = store.read_trusted(lake_spark, settings, "events").where(F.col("source").isin(SOURCES))
    split, stats = prepare(events, TrainingConfig())
    # A poor model: so much regularisation that it forecasts each source's training mean.
    poor = make_pipeline("linear_regression", TrainingConfig(lr_reg_param=1e6))
    poor = poor.fit(scale(split.where("split = 'train'"), stats))
    mlflow.set_experiment(settings.mlflow.experiment)
    with mlflow.start_run(run_name="poor model (test)") as run:
        mlflow.log_dict(stats_as_dict(stats), "source_stats.json")
        mlflow.spark.log_model(poor, "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)

    decision = decide(lake_spark, split, stats, version, poor, stats)
    assert not decision.promoted and decision.champion_mae < decision.challenger_mae
    assert mlflow_client.get_model_version_by_alias(name, CHAMPION).version == champion.version
    assert mlflow_client.get_model_version_by_alias(name, CHALLENGER).version == version.version

    # With the poor model as champion, the next retraining's challenger beats it.
    mlflow_client.set_registered_model_alias(name, CHAMPION, version.version)
    retrain = _retrain(api, {"models": ["linear_regression"], "sources": SOURCES, "reason": "test"})
    (parent,) = [r for r in _runs_of(mlflow_client, settings, retrain)
                 if r.info.run_name.startswith("retrain")]  # fmt: skip
    assert parent.data.metrics["promoted"] == 1.0
    assert " beats " in parent.data.tags["lakepulse.decision"]
    now = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    assert now.version == parent.data.tags["lakepulse.challenger_version"] != version.version


def _scoring_driver(settings) -> int | None:
    beat = read_heartbeat(WebHdfs(settings.hdfs), settings.status_path, "score_events") or {}
    return beat.get("pid") if beat.get("event") not in ("stopped", "failed") else None


def _predictions(lake_rows, event_ids: list[str]) -> dict[str, list]:
    rows = lake_rows(f"select event_id, model_version, anomaly_score, forecast from predictions "
                     f"where event_id in ({_in(event_ids)})")  # fmt: skip
    found: dict[str, list] = {}
    for event_id, *rest in rows:
        found.setdefault(event_id, []).append(rest)
    return found


def _send(settings, source: str, moments_values: list) -> list[str]:
    from confluent_kafka import Producer

    from lakepulse.events import Event

    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    ids = []
    for moment, value in moments_values:
        event = Event.create(source, moment, value)
        producer.produce(settings.kafka.events_topic, event.to_json_bytes(), key=event.key)
        ids.append(event.event_id)
    assert producer.flush(30) == 0
    return ids


def _last_time(lake_rows, source: str):
    return lake_rows(f"select max(event_time) from raw_events where source = '{source}'")[0][0]


@pytest.mark.timeout(2400)  # the scoring job starts once the champion exists: give it time
def test_live_scoring_writes_predictions_and_sends_anomalies(
    first_retrain, history, job_running, lake_rows
):
    import datetime as dt

    from confluent_kafka import Consumer

    settings = job_running
    replayed = [e for e in history.event_ids][-200:]
    found = wait_for(lambda: _predictions(lake_rows, replayed), lambda f: len(f) == len(replayed),
                     2 * DEADLINE_S, "predictions for the replayed events")  # fmt: skip
    assert all(len(rows) == 1 for rows in found.values())  # each event scored once
    assert all(rows[0][0] is not None for rows in found.values())  # with the model's version
    assert any(rows[0][2] is not None for rows in found.values())  # forecasts made

    # A spike in every source: one that had an incident of its own moments ago may be in its
    # quiet period (one incident is reported once), the others must report theirs.
    spikes = {}
    for source in SOURCES:
        last = _last_time(lake_rows, source).replace(tzinfo=dt.UTC)
        (spike,) = _send(settings, source, [(last + dt.timedelta(minutes=5), 1e6)])
        spikes[spike] = source
    consumer = Consumer({
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"test-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
    })  # fmt: skip
    consumer.subscribe([settings.ml.anomalies_topic])
    seen: dict = {}

    def poll_anomalies():
        message = consumer.poll(2.0)
        if message is not None and message.error() is None:
            body = json.loads(message.value())
            seen[body["event_id"]] = body
        return [seen[s] for s in spikes if s in seen]

    try:
        (alert, *_) = wait_for(poll_anomalies, bool, DEADLINE_S, "a spike in the anomalies topic",
                               interval=0)  # fmt: skip
    finally:
        consumer.close()
    assert alert["source"] == spikes[alert["event_id"]]
    assert alert["anomaly_score"] >= settings.ml.anomaly_threshold
    assert alert["model_version"] and alert["value"] == 1e6


@pytest.mark.timeout(1800)
def test_a_new_champion_is_picked_up_without_a_restart(first_retrain, job_running, lake_rows,
                                                       mlflow_client):  # fmt: skip
    import datetime as dt

    from lakepulse.ml.registry import CHAMPION

    settings = job_running
    name = settings.ml.registered_model
    driver = wait_for(lambda: _scoring_driver(settings), bool, DEADLINE_S, "the scoring job")
    current = mlflow_client.get_model_version_by_alias(name, CHAMPION).version
    other = next(v.version for v in mlflow_client.search_model_versions(f"name = '{name}'")
                 if v.version != current)  # fmt: skip
    mlflow_client.set_registered_model_alias(name, CHAMPION, other)
    source = SOURCES[1]
    last = _last_time(lake_rows, source).replace(tzinfo=dt.UTC)

    def scored_by_new_champion():
        # Keep sending until an event is scored by the new version: the job looks every 5 s.
        moment = last + dt.timedelta(minutes=5 * (len(sent) + 1))
        ids = _send(settings, source, [(moment, 50.0)])
        sent.extend(ids)
        found = _predictions(lake_rows, sent)
        return [i for i in sent if found.get(i) and found[i][0][0] == other]

    sent: list[str] = []
    wait_for(scored_by_new_champion, bool, DEADLINE_S, f"an event scored by v{other}", interval=10)
    assert _scoring_driver(settings) == driver  # the same job, not restarted
    everything = _predictions(lake_rows, sent)
    assert all(len(rows) == 1 for rows in everything.values())  # none scored twice
