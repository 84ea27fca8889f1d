"""What one ``data_quality`` run found, read back from HDFS for the alert and the DAG's result."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lakepulse.quality.alert import alert_html, alert_subject
from lakepulse.quality.verdicts import Verdict
from lakepulse.settings import Settings
from lakepulse.webhdfs import WebHdfs


def run_summary_path(settings: Settings, run_id: str) -> str:
    return f"{settings.quality_path}/runs/{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id)}.json"


def data_docs_url(settings: Settings) -> str:
    """Where the Airflow API server serves Data Docs (plugins/data_docs_plugin.py)."""
    return f"{settings.airflow.url}/data-docs/index.html"


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    verdicts: list[Verdict]
    reconciled: bool | None  # None: nothing to reconcile yet
    reconciliation_failures: list[str]

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.passed]

    @property
    def passed(self) -> list[str]:
        return [v.partition for v in self.verdicts if v.passed]

    def alert(self, settings: Settings) -> tuple[str, str] | None:
        """(subject, HTML body) of the alert e-mail, or None when nothing failed."""
        if not self.failed and self.reconciled is not False:
            return None
        subject = alert_subject(self.failed) if self.failed else (
            "[Lakepulse] data quality: Kafka offsets and landed rows disagree"
        )  # fmt: skip
        body = alert_html(self.failed, data_docs_url(settings))
        if self.reconciled is False:
            items = "".join(f"<li>{failure}</li>" for failure in self.reconciliation_failures)
            body += f"<h2>Kafka offsets vs rows landed</h2><ul>{items}</ul>"
        return subject, body

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "validated": len(self.verdicts),
            "passed": self.passed,
            "failed": [v.partition for v in self.failed],
            "reasons": {v.partition: v.reasons for v in self.failed},
            "reconciled": self.reconciled,
        }


def load_run(client: WebHdfs, settings: Settings, run_id: str) -> RunOutcome:
    data = json.loads(client.read_text(run_summary_path(settings, run_id)))
    reconciliation = data.get("reconciliation")
    return RunOutcome(
        run_id=run_id,
        verdicts=[Verdict.from_json(json.dumps(v)) for v in data.get("verdicts", [])],
        reconciled=None if reconciliation is None else reconciliation["passed"],
        reconciliation_failures=[] if reconciliation is None else reconciliation["failures"],
    )
