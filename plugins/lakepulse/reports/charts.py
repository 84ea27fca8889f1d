"""The report's charts (matplotlib, Agg backend), each as PNG bytes.

Every chart has a title that says what and when, axes with units, a legend where there is more
than one series, and the same colour for a source wherever it appears. A chart without data
says so in its middle instead of being left out, so the report always has the same shape.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lakepulse.reports import ReportData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Fixed colours for what is not a source, so that the eye learns them once.
ANOMALY = "#d62728"
FORECAST = "#555555"
LAG = "#ff7f0e"
VOLUME = "#1f77b4"
RESTART = "#9467bd"
MAX_SERIES = 6  # sources drawn in the time-series chart; more would be unreadable
CHART_NAMES = ("volume_heatmap", "anomalies", "volume_lag", "quality_pass_rate")


# Strong, distinguishable colours (tab10, then Dark2): light shades are unreadable as text.
PALETTE = (
    "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#ff7f0e",
)  # fmt: skip


def _floats(values) -> list[float]:
    """Numbers for matplotlib: a missing value becomes NaN (drawn as a gap)."""
    return [math.nan if v is None else float(v) for v in values]


def source_colours(data: ReportData) -> dict[str, str]:
    """One colour per source of the report, the same in every chart and table.

    Sources in name order take the palette in order, so a report's sources never share a
    colour while there are no more than the palette holds, and a day with the same sources
    gets the same colours as the day before. Red (anomalies) and orange (lag) stay reserved
    for what they mark, except when more sources than colours wrap around.
    """
    sources: set[str] = set()
    for result in data.results.values():
        if "source" in result.columns:
            position = result.columns.index("source")
            sources.update(str(row[position]) for row in result.rows)
    usable = [c for c in PALETTE if c not in {ANOMALY, LAG}]
    return {source: usable[i % len(usable)] for i, source in enumerate(sorted(sources))}


def _figure(width: float, height: float) -> Figure:
    # The pyplot-free API: no global state, safe in threads and in Airflow workers.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No metadata: the same data gives byte-identical PNGs (a re-run gives the same report).
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, color="#666666",
            transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _instant(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def volume_heatmap(data: ReportData) -> bytes:
    """Source x hour of the day: events per hour, one row per source."""
    import numpy as np

    rows = data["volume_by_source_hour"].records()
    sources = sorted({r["source"] for r in rows})
    figure = _figure(11, max(3.2, 1.6 + 0.28 * len(sources)))
    ax = figure.subplots()
    ax.set_title(f"Events per source and hour, {data.day} (UTC event time)")
    if not sources:
        _no_data(ax, "no events on this day")
        return _png(figure)
    grid = np.zeros((len(sources), 24))
    position = {source: i for i, source in enumerate(sources)}
    for row in rows:
        grid[position[row["source"]], int(row["hour"])] = row["events"]
    # From zero: a steady feed should look steady, not mid-scale of its own tiny range.
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest",
                      vmin=0, vmax=max(1.0, float(grid.max())))  # fmt: skip
    ax.set_yticks(range(len(sources)), sources, fontsize=8)
    colours = source_colours(data)
    for label in ax.get_yticklabels():
        label.set_color(colours[label.get_text()])
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)], fontsize=8)
    ax.set_xlabel("hour of the day (UTC)")
    figure.colorbar(image, ax=ax, label="events per hour")
    return _png(figure)


def _chart_sources(series: dict[str, list[dict]], flagged: str) -> list[str]:
    """The sources worth a panel: most anomalies first, then most data, then by name."""

    def rank(source: str) -> tuple:
        points = series[source]
        return (-sum(1 for p in points if p[flagged]), -len(points), source)

    return sorted(series, key=rank)[:MAX_SERIES]


def anomalies(data: ReportData) -> bytes:
    """Per source: the values, the forecast band and the anomalies the model flagged.

    Until the predictions table exists, the curated values are drawn with the anomalies the
    data is labelled with, and the chart says that no predictions exist yet.
    """
    predictions = data["prediction_series"]
    predicted = bool(predictions.rows)
    result = predictions if predicted else data["source_series"]
    flagged = "anomaly" if predicted else "labelled_anomaly"
    series: dict[str, list[dict]] = {}
    for row in result.records():
        series.setdefault(row["source"], []).append(row)
    sources = _chart_sources(series, flagged)
    figure = _figure(11, max(3.2, 2.1 * max(1, len(sources))))
    title = f"Values, forecast band and anomalies per source, {data.day} (UTC)"
    if not predicted:
        title = f"Values and labelled anomalies per source, {data.day} (UTC) — no predictions yet"
    figure.suptitle(title)
    if not sources:
        _no_data(figure.subplots(), "no events on this day")
        return _png(figure)
    axes = figure.subplots(len(sources), 1, sharex=True, squeeze=False)[:, 0]
    colours = source_colours(data)
    for ax, source in zip(axes, sources, strict=True):
        points = series[source]
        times = [_instant(p["time"]) for p in points]
        values = _floats(p["value"] for p in points)
        colour = colours[source]
        # Markers when points are few: a lone point has no line to show it.
        marker = "." if len(points) < 50 else None
        ax.plot(times, values, color=colour, linewidth=1.2, marker=marker,
                label=f"{source} (5-min mean)")  # fmt: skip
        if predicted:
            # Rows scored before a source's detector had a model carry no forecast (NaN: a gap).
            ax.fill_between(times, _floats(p["forecast_lower"] for p in points),
                            _floats(p["forecast_upper"] for p in points), color=FORECAST,
                            alpha=0.18, linewidth=0, label="forecast band")  # fmt: skip
            ax.plot(times, _floats(p["forecast"] for p in points), color=FORECAST, linewidth=0.9,
                    linestyle="--", label="forecast")  # fmt: skip
        marked = [(t, v) for t, v, p in zip(times, values, points, strict=True) if p[flagged]]
        if marked:
            ax.scatter(*zip(*marked, strict=True), color=ANOMALY, s=22, zorder=3,
                       label="anomaly" if predicted else "labelled anomaly")  # fmt: skip
        ax.set_ylabel("value")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (UTC)")
    _hour_axis(axes[-1])
    return _png(figure)


def _hour_axis(ax: Axes) -> None:
    from matplotlib.dates import DateFormatter, HourLocator

    ax.xaxis.set_major_locator(HourLocator(byhour=range(0, 24, 3)))
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=dt.UTC))


def volume_lag(data: ReportData) -> bytes:
    """Events landed per hour (bars), the pipeline lag (lines) and the job's restarts."""
    lag = data["pipeline_lag"].records()
    restarts = data["pipeline_restarts"].records()
    figure = _figure(11, 5.2)
    volume_ax, lag_ax = figure.subplots(2, 1, sharex=True)
    figure.suptitle(f"Volume landed and pipeline lag per hour, {data.day} (UTC wall clock)")
    hours = [int(r["hour"]) for r in lag]
    volume_ax.bar(hours, [r["events"] for r in lag], color=VOLUME, width=0.8,
                  label="events landed in the raw zone")  # fmt: skip
    volume_ax.set_ylabel("events per hour")
    lag_ax.plot(hours, [r["avg_lag_s"] for r in lag], color=LAG, marker="o", markersize=3,
                label="mean lag")  # fmt: skip
    lag_ax.plot(hours, [r["p95_lag_s"] for r in lag], color=LAG, linestyle="--", marker="^",
                markersize=3, label="p95 lag")  # fmt: skip
    lag_ax.set_ylabel("seconds (Kafka → lake)")
    lag_ax.set_xlabel("hour of the day (UTC)")
    lag_ax.set_xlim(-0.6, 23.6)
    lag_ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)], fontsize=8)
    for number, restart in enumerate(restarts):
        at = _instant(restart["at"])
        position = at.hour + at.minute / 60 - 0.5  # bars are centred on their hour
        for ax in (volume_ax, lag_ax):
            ax.axvline(position, color=RESTART, linestyle=":", linewidth=1.2,
                       label="job (re)start or stop" if number == 0 else None)  # fmt: skip
    if not lag:
        _no_data(volume_ax, "no events landed on this day")
    for ax in (volume_ax, lag_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8, frameon=False)
    return _png(figure)


def quality_pass_rate(data: ReportData) -> bytes:
    """The share of validations passed per day and table, over the last two weeks."""
    rows = data["quality_pass_rate_trend"].records()
    figure = _figure(11, 3.8)
    ax = figure.subplots()
    days = int(data["quality_pass_rate_trend"].params.get("days", 14))
    ax.set_title(f"Data-quality pass rate per day, {days} days to {data.day} (UTC)")
    if not rows:
        _no_data(ax, "no validations in this period")
        return _png(figure)
    for table in sorted({r["table"] for r in rows}):
        points = [r for r in rows if r["table"] == table]
        ax.plot([dt.date.fromisoformat(p["day"]) for p in points],
                [p["pass_rate_pct"] for p in points], marker="o", label=table,
                color=_table_colour(table))  # fmt: skip
    ax.set_ylim(-5, 105)
    ax.set_ylabel("validations passed (%)")
    ax.set_xlabel("day of validation (UTC)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncols=3, frameon=False)
    figure.autofmt_xdate()
    return _png(figure)


def _table_colour(table: str) -> str:
    from matplotlib import colormaps

    red, green, blue, _ = colormaps["Dark2"](zlib.crc32(table.encode()) % 8)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def render_charts(data: ReportData, names: Iterable[str] = CHART_NAMES) -> dict[str, bytes]:
    """Every chart of the report as PNG bytes, by name (the name is also the file's stem)."""
    import matplotlib

    matplotlib.use("Agg")  # no display in workers; the Figure API needs no pyplot anyway
    drawers = {
        "volume_heatmap": volume_heatmap,
        "anomalies": anomalies,
        "volume_lag": volume_lag,
        "quality_pass_rate": quality_pass_rate,
    }
    return {name: drawers[name](data) for name in names}
