"""The expectation suites, and the Great Expectations file context that holds them.

The suites are defined here, once, and written with ``lakepulse quality write-context`` into
``expectations/gx/`` (suites, validation definitions and checkpoints as JSON, checked in);
``tests/test_quality_suites.py`` fails when the two drift apart. Each suite validates one of
the frames of :mod:`lakepulse.quality.frames`:

- ``raw_events`` and ``events``: a partition's rows (schema and types, non-null keys, unique
  ids or Kafka coordinates, values within the source's learned range, freshness);
- ``events_by_source``: one row per source (distribution against its history);
- ``events_agg_1m`` / ``events_agg_5m``: a partition of windows (keys, counts, order of stats);
- ``kafka_reconciliation``: one row per Kafka partition (offsets consumed vs rows landed).

Run-time values are suite parameters: ``fresh_after`` (the oldest newest-arrival a fresh
partition may have) and ``max_mean_shift_sigmas``. Validation results and Data Docs are written
outside the repository, to the directories named by the environment variables below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lakepulse.settings import PROJECT_ROOT, Settings, get_settings

CONTEXT_ROOT = PROJECT_ROOT / "expectations"
DATASOURCE = "lake"
RESULTS_DIR_ENV = "LAKEPULSE_GX_RESULTS_DIR"
DOCS_DIR_ENV = "LAKEPULSE_GX_DATA_DOCS_DIR"

# Row frames are indexed by event id in results, so that failures name sample rows.
ROW_INDEX = {"raw_events": ["event_id"], "events": ["event_id"]}
RANGE_MOSTLY = 0.999  # a real series may set a new record now and then, not often

_EVENT_TYPES = {
    "event_id": "StringType",
    "source": "StringType",
    "event_time": "TimestampType",
    "value": "DoubleType",
    "ingested_at": "TimestampType",
    "kafka_topic": "StringType",
    "kafka_partition": "IntegerType",
    "kafka_offset": "LongType",
}
_EVENT_KEYS = ["event_id", "source", "event_time", "kafka_topic", "kafka_partition", "kafka_offset"]
_AGG_TYPES = {
    "window_start": "TimestampType",
    "window_end": "TimestampType",
    "source": "StringType",
    "count": "LongType",
    "min": "DoubleType",
    "max": "DoubleType",
    "mean": "DoubleType",
}


def _event_rows(gxe: Any, *, unique_ids: bool) -> list[Any]:
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectTableColumnsToMatchSet(column_set=list(_EVENT_TYPES), exact_match=False),
        *(gxe.ExpectColumnValuesToBeOfType(column=c, type_=t) for c, t in _EVENT_TYPES.items()),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in _EVENT_KEYS),
        gxe.ExpectColumnMaxToBeBetween(
            column="ingested_at", min_value={"$PARAMETER": "fresh_after"}
        ),
        # value_low/value_high come from the reviewed source profile (frames.with_learned_ranges).
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="value", column_B="value_low", or_equal=True,
            ignore_row_if="either_value_is_missing", mostly=RANGE_MOSTLY,
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="value_high", column_B="value", or_equal=True,
            ignore_row_if="either_value_is_missing", mostly=RANGE_MOSTLY,
        ),
    ]  # fmt: skip
    if unique_ids:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column="event_id"))
    else:  # the raw zone keeps re-sent copies; a Kafka message lands once
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=_EVENT_KEYS[3:]))
    return expectations


def _aggregates(gxe: Any) -> list[Any]:
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectTableColumnsToMatchSet(column_set=list(_AGG_TYPES), exact_match=False),
        *(gxe.ExpectColumnValuesToBeOfType(column=c, type_=t) for c, t in _AGG_TYPES.items()),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("window_start", "source", "count")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["source", "window_start"]),
        gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="max", column_B="mean", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="mean", column_B="min", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
    ]  # fmt: skip


def suite_expectations() -> dict[str, list[Any]]:
    """Every suite's expectations, by suite name."""
    import great_expectations.expectations as gxe

    return {
        "raw_events": _event_rows(gxe, unique_ids=False),
        "events": _event_rows(gxe, unique_ids=True),
        "events_by_source": [
            gxe.ExpectColumnValuesToBeBetween(
                column="mean_shift_sigmas", max_value={"$PARAMETER": "max_mean_shift_sigmas"}
            ),
            # Spread may collapse for a day (a flat series), not explode: NAB's days stay below 6x.
            gxe.ExpectColumnValuesToBeBetween(column="spread_ratio", max_value=10),
        ],
        "events_agg_1m": _aggregates(gxe),
        "events_agg_5m": _aggregates(gxe),
        "kafka_reconciliation": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnPairValuesToBeEqual(column_A="landed", column_B="consumed"),
            gxe.ExpectColumnValuesToBeBetween(column="in_both", min_value=0, max_value=0),
        ],
    }


def result_format(suite: str) -> dict[str, Any]:
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
    if suite in ROW_INDEX:
        fmt["unexpected_index_column_names"] = ROW_INDEX[suite]
    return fmt


def get_context(root: Path = CONTEXT_ROOT, settings: Settings | None = None) -> Any:
    """The checked-in file context (``root/gx``), reading suites and checkpoints from it;
    results and Data Docs go to the deployment of ``settings`` (default: this process's)."""
    import great_expectations as gx

    settings = settings or get_settings()
    os.environ[RESULTS_DIR_ENV] = str(settings.paths.data_dir / "quality" / "gx_results")
    os.environ[DOCS_DIR_ENV] = str(settings.data_docs_dir)
    return gx.get_context(mode="file", project_root_dir=str(root))


def write_context(root: Path = CONTEXT_ROOT) -> list[str]:
    """(Re)write the file context below ``root`` from :func:`suite_expectations`."""
    import great_expectations as gx

    context = get_context(root)
    # Kept when present: re-adding would give every asset and batch definition a new id.
    existing = {s.name: s for s in context.data_sources.all().values()}
    source = existing.get(DATASOURCE) or context.data_sources.add_spark(DATASOURCE)
    written = []
    for name, expectations in suite_expectations().items():
        asset = next((a for a in source.assets if a.name == name), None) or (
            source.add_dataframe_asset(name)
        )
        batch = next((b for b in asset.batch_definitions if b.name == "partition"), None) or (
            asset.add_batch_definition_whole_dataframe("partition")
        )
        suite = _unchanged_suite(context, name, expectations) or context.suites.add_or_update(
            gx.ExpectationSuite(name=name, expectations=expectations)
        )
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        # No Data Docs action: a run rebuilds the docs once, after all its partitions.
        context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[validation],
                actions=[],
                result_format=result_format(name),
            )
        )
        written.append(name)
    _point_outputs_outside(root / "gx" / "great_expectations.yml")
    return written


def _signature(expectations: list[Any]) -> list[str]:
    import json

    return sorted(
        json.dumps([e.expectation_type, e.configuration.kwargs], sort_keys=True, default=str)
        for e in expectations
    )


def _unchanged_suite(context: Any, name: str, expectations: list[Any]) -> Any | None:
    """The stored suite when it already holds exactly ``expectations`` (ids kept)."""
    try:
        stored = context.suites.get(name)
    except Exception:  # GX raises its own not-found error types
        return None
    return stored if _signature(stored.expectations) == _signature(expectations) else None


def _point_outputs_outside(config: Path) -> None:
    """Results and Data Docs belong to a deployment, not to the checked-in context."""
    text = config.read_text()
    text = text.replace(
        "base_directory: uncommitted/validations/", f"base_directory: ${{{RESULTS_DIR_ENV}}}"
    ).replace(
        "base_directory: uncommitted/data_docs/local_site/", f"base_directory: ${{{DOCS_DIR_ENV}}}"
    )
    config.write_text(text)
