"""Novelty of the recent shape of a series: has a window like this one been seen before?

Why, next to the forecast residuals: many incidents are not one surprising row but a stretch
that looks like nothing before (a burst, a new level, a flat line where there were waves, a
denser train of spikes). A forecaster adapts to them within a few rows; a memory of the
shapes seen so far does not forget them.

How (an incremental nearest-prototype memory, in the spirit of adaptive resonance theory):

1. The series is downsampled to steps of ``step`` rows, so that the warm-up holds about
   ``window * steps_per_warmup`` steps whatever the sampling rate. A step keeps its extreme
   (the row farthest from a running mean) rather than its mean, so that one-row spikes
   survive, unless that extreme is within 10 % of the step's mean.
2. A step's value is scaled by the warm-up's range (values outside it fall outside [0, 1]),
   quantised to ``1 / levels``, and snapped to the running median when within ``chomp`` of
   it: noise around the usual level is one shape, not many.
3. The last ``window`` steps form a shape. At the end of the warm-up, the vigilance is set
   from the warm-up's shapes: ``vigilance_factor`` x the ``quantile`` of each shape's distance
   (mean absolute difference) to its nearest neighbour. Prototypes are the warm-up shapes
   that are farther than that from every earlier prototype.
4. Afterwards a shape farther than the vigilance from every prototype is novel: its novelty
   is ``distance / vigilance`` and it becomes a prototype itself (an incident is news once).
   For ``mask_steps`` steps after a reported novelty, only a shape ``mask_ratio`` times more
   distant than the reported one is reported again.

State is plain lists and numbers (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PatternNovelty:
    step: int
    window: int = 5
    quantile: float = 0.95
    vigilance_factor: float = 3.0
    mask_steps: int = 60
    mask_ratio: float = 1.6
    chomp: float = 0.075
    levels: int = 80
    # -- state --
    block: list[float] = field(default_factory=list)
    mean: float | None = None  # running mean of step means: where "extreme" is measured from
    warmup_steps: list[float] = field(default_factory=list)  # raw step values until calibrated
    low: float | None = None
    span: float = 1.0
    level_counts: dict[int, int] = field(default_factory=dict)
    recent: list[float] = field(default_factory=list)
    prototypes: list[list[float]] = field(default_factory=list)
    vigilance: float | None = None
    steps: int = 0
    last_step: int | None = None
    last_distance: float = 0.0

    @classmethod
    def for_warmup(cls, warmup_rows: int, window: int, steps_per_warmup: int, **kw: Any):
        """Steps sized so that the warm-up holds about ``window * steps_per_warmup`` of them."""
        step = max(1, warmup_rows // (window * steps_per_warmup))
        return cls(step=step, window=window, **kw)

    # -- the downsampled step ---------------------------------------------------------------

    def _step_value(self, block: list[float]) -> tuple[float, float]:
        """(the step's value, the running mean after it)."""
        m = sum(block) / len(block)
        hi, lo = max(block), min(block)
        running = m if self.mean is None else (self.mean + m) / 2.0
        value = hi if abs(hi - running) >= abs(lo - running) else lo
        if abs(value - m) < 0.1 * abs(m):
            value = m
        return value, running

    def _level(self, value: float) -> float:
        assert self.low is not None
        return round((value - self.low) / self.span * self.levels) / self.levels

    def _median(self, counts: dict[int, int]) -> float:
        """Median level from the level histogram (the mean of the two middle ones)."""
        total = sum(counts.values())
        lower = upper = None
        seen = 0
        for level in sorted(counts):
            seen += counts[level]
            if lower is None and seen >= (total + 1) // 2:
                lower = level
            if seen >= total // 2 + 1:
                upper = level
                break
        assert lower is not None and upper is not None
        return (lower + upper) / 2.0 / self.levels

    def _snap(self, level: float, counts: dict[int, int]) -> float:
        median = self._median(counts)
        return median if abs(level - median) < self.chomp else level

    # -- scoring and learning ----------------------------------------------------------------

    def _distance(self, shape: list[float]) -> float:
        protos = np.asarray(self.prototypes)
        return float(np.abs(protos - np.asarray(shape)).mean(axis=1).min())

    def _assess(self, value: float) -> tuple[float, list[float] | None, float, dict[int, int]]:
        """For a row closing a step: (novelty, shape, distance, level counts after it)."""
        step_value, _ = self._step_value([*self.block, value])
        level = self._level(step_value)
        key = round(level * self.levels)
        counts = dict(self.level_counts)
        counts[key] = counts.get(key, 0) + 1
        level = self._snap(level, counts)
        shape = [*self.recent[-(self.window - 1) :], level] if self.window > 1 else [level]
        if len(shape) < self.window or not self.prototypes or self.vigilance is None:
            return 0.0, shape, 0.0, counts
        distance = self._distance(shape)
        if distance <= self.vigilance:
            return 0.0, shape, distance, counts
        masked = self.last_step is not None and self.steps - self.last_step <= self.mask_steps
        if masked and distance <= self.last_distance * self.mask_ratio:
            return 0.0, shape, distance, counts
        return distance / self.vigilance, shape, distance, counts

    def novelty(self, value: float) -> float:
        """Novelty of the shape this row completes (0 when it completes none, or before the
        warm-up's calibration). Changes nothing."""
        if self.vigilance is None or len(self.block) + 1 < self.step:
            return 0.0
        return self._assess(value)[0]

    def learn(self, value: float) -> None:
        """Take a row; every ``step`` rows a step is added (to the warm-up or the memory)."""
        if len(self.block) + 1 < self.step:
            self.block.append(value)
            return
        if self.vigilance is None:
            step_value, self.mean = self._step_value([*self.block, value])
            self.warmup_steps.append(step_value)
        else:
            novelty, shape, distance, counts = self._assess(value)
            _, self.mean = self._step_value([*self.block, value])
            self.level_counts = counts
            assert shape is not None
            self.recent = shape[-self.window :]
            if len(shape) == self.window and distance > self.vigilance:
                if novelty > 0.0:
                    self.last_step = self.steps
                    self.last_distance = distance
                self.prototypes.append(shape)
        self.block = []
        self.steps += 1

    def calibrate(self, warmup_values: list[float]) -> None:
        """End of the warm-up: scale, vigilance and first prototypes from its steps."""
        if self.vigilance is not None:
            return
        low, high = min(warmup_values), max(warmup_values)
        self.low = low
        self.span = high - low if high > low else (abs(high) or 1.0)
        levels: list[float] = []
        counts: dict[int, int] = {}
        for raw in self.warmup_steps:
            level = self._level(raw)
            key = round(level * self.levels)
            counts[key] = counts.get(key, 0) + 1
            levels.append(self._snap(level, counts))
        self.level_counts = counts
        self.recent = levels[-self.window :]
        shapes = np.array(
            [levels[i - self.window + 1 : i + 1] for i in range(self.window - 1, len(levels))]
        )
        if len(shapes) < 3:
            self.vigilance = float("inf")  # too short a warm-up to know what is usual
            return
        dist = np.abs(shapes[:, None, :] - shapes[None, :, :]).mean(axis=2)
        np.fill_diagonal(dist, np.inf)
        nearest = dist.min(axis=1)
        self.vigilance = max(
            float(np.quantile(nearest, self.quantile)) * self.vigilance_factor, 1e-6
        )
        for shape in shapes:
            if not self.prototypes or self._distance(list(shape)) > self.vigilance:
                self.prototypes.append([float(v) for v in shape])
        self.warmup_steps = []

    # -- state -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["level_counts"] = {str(k): v for k, v in self.level_counts.items()}
        if self.vigilance is not None and self.vigilance == float("inf"):
            data["vigilance"] = "inf"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatternNovelty:
        data = dict(data)
        data["level_counts"] = {int(k): int(v) for k, v in data["level_counts"].items()}
        if data.get("vigilance") == "inf":
            data["vigilance"] = float("inf")
        return cls(**data)
