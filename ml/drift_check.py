"""spark-submit entry point: measure drift of the live data from the champion's training
(ml_drift_monitor DAG); see lakepulse.ml.drift for the measure.

    spark-submit ml/drift_check.py --run-id RUN

Writes the result to ``<lake>/ml/drift/measured_date=<date>/<run>.json`` (the ``ml_drift``
table), logs it to MLflow (run "drift monitor") and prints it as one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import lakepulse  # noqa: F401  (pip-installed, editable)
except ModuleNotFoundError:  # fall back to the source tree next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from lakepulse.lake import read_table
from lakepulse.log import get_logger
from lakepulse.ml.drift import per_source_drift, summary
from lakepulse.ml.registry import CHAMPION, alias_version, load_version
from lakepulse.settings import Settings, get_settings
from lakepulse.spark_session import build_spark
from lakepulse.webhdfs import WebHdfs

COMPONENT = "ml_drift"
log = get_logger(COMPONENT)


def drift_result_path(settings: Settings, run_id: str, day: dt.date) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return f"{settings.hdfs.lake_root.rstrip('/')}/ml/drift/measured_date={day}/{safe}.json"


def measure(settings: Settings, run_id: str) -> dict:
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    champion = alias_version(settings.ml.registered_model, CHAMPION)
    if champion is None:
        return {"drift": None, "over_threshold": False, "reason": "no champion yet"}
    spark = build_spark(settings, COMPONENT)
    try:
        _, stats = load_version(spark, champion)
        events = read_table(spark, settings, "events")
        per_source = (
            {} if events is None else per_source_drift(events, stats, settings.ml.drift_rows)
        )
        result = summary(per_source, settings.ml.drift_threshold, champion.version)
    finally:
        spark.stop()
    mlflow.set_experiment(settings.mlflow.experiment)
    runs = mlflow.search_runs(filter_string="tags.lakepulse.kind = 'drift_monitor'", max_results=1,
                              output_format="list")  # fmt: skip
    with mlflow.start_run(run_id=runs[0].info.run_id if runs else None,
                          run_name=None if runs else "drift monitor"):  # fmt: skip
        mlflow.set_tag("lakepulse.kind", "drift_monitor")
        if result["drift"] is not None:
            mlflow.log_metric(
                "drift", result["drift"], timestamp=int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    result = {"measured_at": now.isoformat(timespec="seconds"), "run_id": args.run_id,
              **measure(settings, args.run_id)}  # fmt: skip
    WebHdfs(settings.hdfs).write_text(drift_result_path(settings, args.run_id, now.date()),
                                      json.dumps(result) + "\n")  # fmt: skip
    log.info("drift measured", **{k: v for k, v in result.items() if k != "worst_sources"})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
