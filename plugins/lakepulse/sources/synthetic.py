"""A built-in generator of realistic metric streams, used when no NAB corpus is available.

Each source is one kind of metric (CPU utilisation, request rate, latency, temperature) with
its own level, daily and weekly seasonality, a slow trend and autocorrelated noise. Now and then
an anomaly is injected (a spike, a dip or a level shift); every value it touches carries
``is_anomaly=true`` and every other value ``is_anomaly=false``, so detectors can be scored.

Everything derives from the seed and the source's index: the same arguments give the same
events and the same ids, and adding sources does not change the existing ones.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from lakepulse.events import Event
from lakepulse.sources import ReplayEvent

CATEGORY: Final = "synthetic"
DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
DEFAULT_STEP: Final = timedelta(minutes=5)

AnomalyKind = Literal["spike", "dip", "level_shift"]
_ANOMALY_KINDS: Final[tuple[AnomalyKind, ...]] = ("spike", "dip", "level_shift")
_ANOMALY_WEIGHTS: Final = (0.5, 0.25, 0.25)


@dataclass(frozen=True, slots=True)
class MetricProfile:
    """How one source behaves. Amplitudes, trend and noise are fractions of ``base``."""

    kind: str
    base: float
    daily_amp: float
    peak_hour: float
    weekend_dip: float
    trend_per_day: float
    noise: float
    ar: float  # AR(1) coefficient of the noise: real metrics wander, they do not jitter
    floor: float = 0.0
    ceiling: float = math.inf
    integer: bool = False


def _profile(kind: str, rng: random.Random) -> MetricProfile:
    u = rng.uniform
    if kind == "cpu_utilization":
        return MetricProfile(
            kind, u(20, 45), u(0.25, 0.5), u(12, 16), u(0.15, 0.3), u(-0.002, 0.004),
            u(0.04, 0.07), 0.6, ceiling=100.0,
        )  # fmt: skip
    if kind == "request_rate":
        return MetricProfile(
            kind, u(200, 2000), u(0.4, 0.7), u(11, 15), u(0.2, 0.4), u(0.0, 0.005),
            u(0.03, 0.06), 0.4, integer=True,
        )  # fmt: skip
    if kind == "latency_ms":
        return MetricProfile(
            kind, u(40, 200), u(0.15, 0.3), u(12, 16), u(0.05, 0.1), u(-0.001, 0.002),
            u(0.05, 0.08), 0.7, floor=1.0,
        )  # fmt: skip
    if kind == "temperature":
        return MetricProfile(
            kind, u(55, 75), u(0.08, 0.15), u(14, 17), u(0.01, 0.03), u(-0.0005, 0.001),
            u(0.01, 0.02), 0.9,
        )  # fmt: skip
    raise ValueError(f"unknown metric kind {kind!r}; known: {', '.join(KINDS)}")


KINDS: Final = ("cpu_utilization", "request_rate", "latency_ms", "temperature")


@dataclass(slots=True)
class _Anomaly:
    kind: AnomalyKind
    remaining: int
    factor: float


@dataclass(slots=True)
class _SourceState:
    name: str
    profile: MetricProfile
    rng: random.Random
    noise: float = 0.0
    anomaly: _Anomaly | None = None
    quiet: int = 0  # steps before another anomaly may start


def step_for_rate(rate: float, n_sources: int, extra_share: float = 0.0) -> timedelta:
    """The step that makes a stream sent at ``rate`` messages/s keep event time with wall time.

    Each step yields one event per source; ``extra_share`` is the share of messages that carry
    no new event (injected malformed messages and duplicates). Whole milliseconds, at least one.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if not 0 <= extra_share < 1:
        raise ValueError(f"extra_share must be within [0, 1), got {extra_share}")
    millis = round(1000 * n_sources / (rate * (1 - extra_share)))
    return timedelta(milliseconds=max(1, millis))


def source_names(n_sources: int) -> list[str]:
    """Names are ``synthetic/<kind>_<nn>``: stable, whatever the seed."""
    return [f"{CATEGORY}/{KINDS[i % len(KINDS)]}_{i:02d}" for i in range(n_sources)]


class SyntheticGenerator:
    """An endless, deterministic stream of events for ``n_sources`` sources.

    Iterating yields, for step k = 0, 1, 2, ..., one :class:`ReplayEvent` per source at event
    time ``start + k * step`` and offset ``k * step`` seconds, sources in name order.
    ``anomaly_rate`` is the chance per source and step that an anomaly starts (the default
    gives about one every four days per source at 5-minute steps); ``missing_rate`` the chance
    that a value is null, as real collectors sometimes miss a sample.
    """

    def __init__(
        self,
        n_sources: int = 8,
        *,
        seed: int = 0,
        step: timedelta = DEFAULT_STEP,
        start: datetime = DEFAULT_START,
        anomaly_rate: float = 0.001,
        missing_rate: float = 0.0005,
    ) -> None:
        if n_sources < 1:
            raise ValueError(f"n_sources must be at least 1, got {n_sources}")
        if step <= timedelta(0):
            raise ValueError(f"step must be positive, got {step}")
        if start.tzinfo is None:
            raise ValueError(f"start {start!r} has no time zone; pass an aware UTC datetime")
        if not 0 <= anomaly_rate <= 1 or not 0 <= missing_rate <= 1:
            raise ValueError("anomaly_rate and missing_rate must be within [0, 1]")
        self.n_sources = n_sources
        self.seed = seed
        self.step = step
        self.start = start.astimezone(UTC)
        self.anomaly_rate = anomaly_rate
        self.missing_rate = missing_rate
        # About a day of calm at the start and after each anomaly: they stay occasional, never
        # overlap, and a detector's learning period starts clean.
        self._quiet_steps = max(1, round(86_400 / step.total_seconds()))

    @property
    def sources(self) -> list[str]:
        return source_names(self.n_sources)

    def _states(self) -> list[_SourceState]:
        states = []
        for index, name in enumerate(self.sources):
            # One generator per source, seeded from (seed, index) only.
            rng = random.Random(self.seed * 1_000_003 + index)
            profile = _profile(KINDS[index % len(KINDS)], rng)
            states.append(_SourceState(name, profile, rng, quiet=self._quiet_steps))
        return states

    def __iter__(self) -> Iterator[ReplayEvent]:
        states = self._states()
        step_s = self.step.total_seconds()
        step_no = 0
        while True:
            offset = step_no * step_s
            moment = self.start + self.step * step_no
            days = offset / 86_400
            for state in states:
                value, is_anomaly = self._next_value(state, moment, days)
                event = Event.create(state.name, moment, value, is_anomaly=is_anomaly)
                yield ReplayEvent(offset, event)
            step_no += 1

    def _seasonal(self, profile: MetricProfile, moment: datetime, days: float) -> float:
        hour = moment.hour + moment.minute / 60 + moment.second / 3600
        angle = 2 * math.pi * (hour - profile.peak_hour) / 24
        # A main daily wave plus a smaller second harmonic: flatter nights, sharper peaks.
        daily = profile.daily_amp * (math.cos(angle) + 0.3 * math.cos(2 * angle))
        weekend = -profile.weekend_dip if moment.weekday() >= 5 else 0.0
        trend = profile.trend_per_day * days
        return profile.base * (1 + trend) * (1 + daily + weekend)

    def _next_value(
        self, state: _SourceState, moment: datetime, days: float
    ) -> tuple[float | None, bool]:
        profile, rng = state.profile, state.rng
        state.noise = profile.ar * state.noise + math.sqrt(1 - profile.ar**2) * rng.gauss(0, 1)
        value = self._seasonal(profile, moment, days) + profile.noise * profile.base * state.noise

        anomaly = state.anomaly
        if anomaly is None and state.quiet <= 0 and rng.random() < self.anomaly_rate:
            anomaly = state.anomaly = self._start_anomaly(rng)
        state.quiet -= 1
        if anomaly is not None:
            if anomaly.kind == "spike":
                # Above the daily peak whatever the hour, so a spike is a real outlier.
                peak = profile.base * (1 + 1.3 * profile.daily_amp)
                value = max(value, peak) * anomaly.factor
            else:
                value *= anomaly.factor
            anomaly.remaining -= 1
            if anomaly.remaining <= 0:
                state.anomaly = None
                state.quiet = self._quiet_steps
        value = min(max(value, profile.floor), profile.ceiling)
        value = float(round(value)) if profile.integer else round(value, 4)
        if anomaly is None and rng.random() < self.missing_rate:
            return None, False
        return value, anomaly is not None

    @staticmethod
    def _start_anomaly(rng: random.Random) -> _Anomaly:
        kind = rng.choices(_ANOMALY_KINDS, weights=_ANOMALY_WEIGHTS)[0]
        if kind == "spike":
            return _Anomaly(kind, rng.randint(1, 3), rng.uniform(1.5, 2.5))
        if kind == "dip":
            return _Anomaly(kind, rng.randint(3, 24), rng.uniform(0.05, 0.4))
        up = rng.random() < 0.5
        factor = rng.uniform(1.3, 1.7) if up else rng.uniform(0.45, 0.7)
        return _Anomaly(kind, rng.randint(12, 144), factor)
