"""Sensor: wait until the MLflow model registry has a version behind an alias."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator


class ModelAliasSensor(BaseSensorOperator):
    """Succeeds once ``alias`` (e.g. ``champion``) of ``model_name`` is set; returns the
    version (XCom)."""

    template_fields = ("model_name", "alias")

    def __init__(self, *, model_name: str, alias: str, tracking_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.tracking_uri = tracking_uri
        self._version: str | None = None

    def poke(self, context: Any) -> bool:
        import mlflow

        from lakepulse.ml.registry import alias_version

        mlflow.set_tracking_uri(self.tracking_uri)
        version = alias_version(self.model_name, self.alias)
        self._version = None if version is None else version.version
        self.log.info("%s@%s: %s", self.model_name, self.alias, self._version or "not set yet")
        return version is not None

    def execute(self, context: Any) -> str | None:
        super().execute(context)
        return self._version
