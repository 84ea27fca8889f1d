"""NAB (Numenta Anomaly Benchmark) series as event sources.

The corpus lives at ``<nab_dir>/data/<category>/<series>.csv`` (columns ``timestamp,value``);
each file is one source named ``<category>/<series>``. The data comes from the numenta/NAB
repository (MIT licence).

Replay puts every chosen series on a common clock: each series starts at offset zero
(``offset = ts - first ts of that series``) and the merged stream is ordered by offset, so a
speed-up of S sends an event at wall time ``offset / S`` and all sources run side by side even
though their real dates differ by years.

Their event times still differ by years, though: a stream processor with one event-time
watermark would see the older series as years late. A *rebased* replay (``epoch`` set) gives
each event the time ``epoch + offset`` instead, so every series runs on the replay's own clock,
and keeps the original timestamp in the event's ``source_time``. Ids follow the event time, so
a rebased replay has ids of its own, stable for a given epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import heapq
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lakepulse.events import Event
from lakepulse.sources import ReplayEvent

NAB_URL = "https://github.com/numenta/NAB"
NAB_HINT = (
    f"The NAB corpus (numenta/NAB, MIT licence) can be obtained from {NAB_URL}: "
    "copy its data/ folder to <nab_dir>/data."
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NabDataMissing(FileNotFoundError):
    """The NAB folder or its data/ subfolder does not exist."""


class NabFormatError(ValueError):
    """A NAB CSV file has a row that is not ``timestamp,value``."""


class UnknownSource(ValueError):
    """A selected source or category is not in the corpus."""


@dataclass(frozen=True, slots=True)
class NabSeries:
    name: str  # "<category>/<series>", also the event source and Kafka key
    path: Path

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


def data_dir(nab_dir: Path) -> Path:
    return Path(nab_dir) / "data"


def discover(nab_dir: Path) -> list[NabSeries]:
    """All series under ``<nab_dir>/data``, sorted by name (so replay tie-breaks are stable)."""
    root = data_dir(nab_dir)
    if not root.is_dir():
        raise NabDataMissing(f"no NAB data folder at {root}. {NAB_HINT}")
    found = [
        NabSeries(f"{path.parent.name}/{path.stem}", path)
        for path in root.glob("*/*.csv")
        if path.is_file()
    ]
    if not found:
        raise NabDataMissing(f"{root} holds no <category>/<series>.csv files. {NAB_HINT}")
    return sorted(found, key=lambda s: s.name)


def parse_selection(selection: str | Iterable[str] | None) -> list[str]:
    """Selection tokens: split on commas, trimmed, without a ".csv" suffix; [] means all."""
    if selection is None:
        return []
    parts = selection.split(",") if isinstance(selection, str) else list(selection)
    return [p.strip().removesuffix(".csv").strip("/") for p in parts if p.strip()]


def select(
    available: Sequence[NabSeries], selection: str | Iterable[str] | None
) -> list[NabSeries]:
    """Pick series by full name, bare series name or category (comma-separated or a list).

    An empty selection means all. The result keeps the corpus order and has no duplicates.
    """
    tokens = parse_selection(selection)
    if not tokens:
        return list(available)
    by_name = {s.name: s for s in available}
    by_stem = {s.name.split("/", 1)[1]: s for s in available}
    categories = sorted({s.category for s in available})
    chosen: set[str] = set()
    for token in tokens:
        if token in by_name:
            chosen.add(token)
        elif token in by_stem:
            chosen.add(by_stem[token].name)
        elif token in categories:
            chosen.update(s.name for s in available if s.category == token)
        else:
            raise UnknownSource(_unknown_message(token, list(by_name), categories))
    return [s for s in available if s.name in chosen]


def _unknown_message(token: str, names: list[str], categories: list[str]) -> str:
    close = difflib.get_close_matches(token, names + categories, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"unknown NAB source {token!r}: {hint}valid sources look like "
        f"{', '.join(names[:3])} (one of {len(names)}), or a category: {', '.join(categories)}"
    )


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    # NAB timestamps carry no zone; the corpus is in UTC by convention.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_value(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    value = float(text)
    return None if math.isnan(value) else value


def read_rows(series: NabSeries) -> Iterator[tuple[datetime, float | None]]:
    """The rows of one file in file order, as (aware UTC time, value or None)."""
    with series.path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != ["timestamp", "value"]:
            raise NabFormatError(f"{series.path}: header {header!r} is not 'timestamp,value'")
        for row in reader:
            if not row:
                continue
            try:
                stamp, raw = row
                yield _parse_time(stamp), _parse_value(raw)
            except ValueError as exc:
                raise NabFormatError(
                    f"{series.path}:{reader.line_num}: bad row {row!r} ({exc})"
                ) from None


def read_events(series: NabSeries) -> Iterator[Event]:
    """The events of one file in file order, with ids made unique within the file."""
    seen: dict[datetime, int] = {}
    for moment, value in read_rows(series):
        seq = seen.get(moment, -1) + 1
        seen[moment] = seq
        yield Event.create(series.name, moment, value, seq=seq)


@dataclass(frozen=True, slots=True)
class _Loaded:
    """One series in time order, held compactly (ms since epoch, NaN for a missing value)."""

    name: str
    millis: array
    values: array

    def __len__(self) -> int:
        return len(self.millis)


def _load(series: NabSeries) -> _Loaded:
    rows = [
        (round(moment.timestamp() * 1000), math.nan if value is None else value)
        for moment, value in read_rows(series)
    ]
    # A stable sort: a few files step back in time (a repeated hour); replay must not.
    rows.sort(key=lambda row: row[0])
    return _Loaded(series.name, array("q", (r[0] for r in rows)), array("d", (r[1] for r in rows)))


def _stream(index: int, loaded: _Loaded) -> Iterator[tuple[int, int, int, int, float]]:
    if not len(loaded):
        return
    first = loaded.millis[0]
    for row, (millis, value) in enumerate(zip(loaded.millis, loaded.values, strict=True)):
        yield millis - first, index, row, millis, value


@dataclass(frozen=True)
class NabReplay:
    """The merged, offset-ordered stream of the chosen series; iterate it to get events."""

    series: tuple[_Loaded, ...]
    epoch: datetime | None = None  # rebased: event_time = epoch + offset; None: original times

    def rebased(self, epoch: datetime | None) -> NabReplay:
        """The same replay with event times ``epoch + offset`` (None: the original times)."""
        if epoch is not None and epoch.tzinfo is None:
            raise ValueError(f"replay epoch {epoch!r} has no time zone; pass an aware datetime")
        return dataclasses.replace(self, epoch=epoch)

    @property
    def sources(self) -> list[str]:
        return [s.name for s in self.series]

    @property
    def total(self) -> int:
        return sum(len(s) for s in self.series)

    def __iter__(self) -> Iterator[ReplayEvent]:
        streams = [_stream(i, s) for i, s in enumerate(self.series)]
        # Ties on the offset go to the earlier series name, then row order: fully deterministic.
        last_millis: list[int | None] = [None] * len(self.series)
        seqs = [0] * len(self.series)
        epoch = self.epoch
        for offset_ms, index, _row, millis, value in heapq.merge(*streams):
            # Rows sharing a timestamp within a series get seq 1, 2, ... so their ids differ.
            seqs[index] = seqs[index] + 1 if last_millis[index] == millis else 0
            last_millis[index] = millis
            moment = _EPOCH + timedelta(milliseconds=millis)
            event = Event.create(
                self.series[index].name,
                moment if epoch is None else epoch + timedelta(milliseconds=offset_ms),
                None if math.isnan(value) else value,
                seq=seqs[index],
                source_time=None if epoch is None else moment,
            )
            yield ReplayEvent(offset_ms / 1000, event)


def replay(
    nab_dir: Path, selection: str | Iterable[str] | None = None, *, epoch: datetime | None = None
) -> NabReplay:
    """Load the chosen series of the corpus at ``nab_dir`` for a merged replay.

    ``epoch`` rebases it (event time ``epoch + offset``, original time in ``source_time``).
    """
    chosen = select(discover(nab_dir), selection)
    return NabReplay(tuple(_load(s) for s in chosen)).rebased(epoch)
