"""The NAB scoring method (Numenta Anomaly Benchmark), as published, vectorised with numpy.

Why vectorised: a threshold is chosen per profile for the whole corpus by trying every distinct
anomaly score as the threshold. Done naively (one pass over every row per candidate) that is
hours; here each series is turned once into a list of *events* ``(threshold value, change in
raw score)`` such that the raw score at threshold ``t`` is ``base + sum(delta for value >= t)``.
Sorting all events once gives the raw score of every candidate threshold at once.

The rules (see ``../shared/data/nab/README.md``):

- rows ``< probation(n)`` never count (no TP, no FP);
- the first detection (``score >= threshold``) inside a window earns
  ``A_TP * S(p) / S(-1)`` with ``p = -(r - i + 1) / w``; later ones in the same window nothing;
- a detection outside every window costs ``-A_FP`` with no earlier window in the series,
  else ``A_FP * S(|i - r'| / (w' - 1))`` relative to the previous window;
- a window without a detection costs ``-A_FN``;
- normalised score ``100 * (raw - null) / (perfect - null)``, null ``= -A_FN * windows``,
  perfect ``= A_TP * windows``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    """Application profile: weights of true positives, false positives, false negatives."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


def scaled_sigmoid(p: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + e^(5p)) - 1``, and ``-1`` beyond ``p > 3``."""
    p = np.asarray(p, dtype=float)
    with np.errstate(over="ignore"):
        s = 2.0 / (1.0 + np.exp(5.0 * p)) - 1.0
    return np.where(p > 3.0, -1.0, s)


def probation_rows(n_rows: int) -> int:
    """Rows of the learning period: ``min(floor(0.15 * rows), 750)``."""
    return min(math.floor(0.15 * n_rows), 750)


def window_indices(
    timestamps: np.ndarray, windows: Sequence[tuple[str, str]]
) -> list[tuple[int, int]]:
    """Windows given as inclusive timestamp pairs -> inclusive row index pairs ``(l, r)``.

    ``timestamps`` is sorted ``datetime64``; a window holding no row is dropped (cannot happen
    with NAB's labels, which are built from the rows).
    """
    ts = np.asarray(timestamps, dtype="datetime64[us]")
    out: list[tuple[int, int]] = []
    for start, end in windows:
        lo = int(np.searchsorted(ts, np.datetime64(start.replace(" ", "T"), "us"), "left"))
        hi = int(np.searchsorted(ts, np.datetime64(end.replace(" ", "T"), "us"), "right")) - 1
        if hi >= lo:
            out.append((lo, hi))
    return out


def _row_weights(
    n_rows: int, windows: Sequence[tuple[int, int]], probation: int, profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the raw score a detection there would add, and its window id (-1 outside).

    Probationary rows weigh 0 and belong to no window (they can never count).
    """
    weight = np.empty(n_rows)
    window_id = np.full(n_rows, -1, dtype=np.int64)
    idx = np.arange(n_rows)
    max_tp = float(scaled_sigmoid(-1.0))
    # False positives: relative to the previous window, or -A_FP before the first one.
    weight[:] = -profile.a_fp
    for k, (lo, hi) in enumerate(windows):
        width = hi - lo + 1
        after = idx > hi
        pos = np.abs(idx[after] - hi) / max(width - 1, 1)
        weight[after] = profile.a_fp * scaled_sigmoid(pos)
        inside = slice(lo, hi + 1)
        weight[inside] = profile.a_tp * scaled_sigmoid(-(hi - idx[inside] + 1) / width) / max_tp
        window_id[inside] = k
    weight[:probation] = 0.0
    window_id[:probation] = -1
    return weight, window_id


def series_events(
    scores: np.ndarray, windows: Sequence[tuple[int, int]], probation: int, profile: Profile
) -> tuple[np.ndarray, np.ndarray, float]:
    """One series -> (event values, event deltas, base raw score at an infinite threshold).

    The raw score at threshold ``t`` is ``base + deltas[values >= t].sum()``.
    False-positive rows are one event each. A window's first detection at threshold ``t`` is
    the first row whose running maximum reaches ``t``: the running maximum's records
    ``v_0 < v_1 < ...`` (rows ``i_0 < i_1 < ...``) give the window's contribution as a step
    function, entered as ``w(i_last) + A_FN`` at ``v_last`` and ``w(i_{k-1}) - w(i_k)`` at
    ``v_{k-1}``.
    """
    scores = np.asarray(scores, dtype=float)
    weight, window_id = _row_weights(len(scores), windows, probation, profile)
    outside = (window_id < 0) & (np.arange(len(scores)) >= probation)
    values = [scores[outside]]
    deltas = [weight[outside]]
    for k in range(len(windows)):
        rows = np.flatnonzero(window_id == k)
        if rows.size == 0:  # the whole window lies in the probation: a sure miss
            continue
        s = scores[rows]
        running = np.maximum.accumulate(s)
        is_record = np.empty(len(s), dtype=bool)
        is_record[0] = True
        is_record[1:] = running[1:] > running[:-1]
        rec_v = s[is_record]
        rec_w = weight[rows[is_record]]
        d = np.empty(len(rec_v))
        d[-1] = rec_w[-1] + profile.a_fn
        d[:-1] = rec_w[:-1] - rec_w[1:]
        values.append(rec_v)
        deltas.append(d)
    base = -profile.a_fn * len(windows)
    return np.concatenate(values), np.concatenate(deltas), base


def raw_score_at(
    scores: np.ndarray,
    windows: Sequence[tuple[int, int]],
    probation: int,
    profile: Profile,
    threshold: float,
) -> float:
    """Raw score of one series at one threshold, row by row (the readable reference)."""
    weight, window_id = _row_weights(len(scores), windows, probation, profile)
    total = 0.0
    detected: set[int] = set()
    for i, s in enumerate(scores):
        if i < probation or s < threshold:
            continue
        k = int(window_id[i])
        if k < 0:
            total += weight[i]
        elif k not in detected:
            detected.add(k)
            total += weight[i]
    return total - profile.a_fn * (len(windows) - len(detected))


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float


def optimise_threshold(
    corpus: Mapping[str, tuple[np.ndarray, Sequence[tuple[int, int]]]], profile: Profile
) -> ProfileResult:
    """The corpus-wide threshold maximising the raw score, and the normalised score.

    ``corpus`` maps a series name to ``(scores, window index pairs)``; probation is derived
    from each series' length. Ties go to the highest threshold (fewest detections). Candidate
    thresholds are the distinct positive scores: a score of 0 never counts as a detection.
    """
    all_v, all_d, base = [], [], 0.0
    n_windows = 0
    for scores, windows in corpus.values():
        v, d, b = series_events(scores, windows, probation_rows(len(scores)), profile)
        all_v.append(v)
        all_d.append(d)
        base += b
        n_windows += len(windows)
    values = np.concatenate(all_v)
    deltas = np.concatenate(all_d)
    order = np.argsort(-values, kind="stable")
    values, deltas = values[order], deltas[order]
    cumulative = base + np.cumsum(deltas)
    # A threshold t takes every event with value >= t: the last of each run of equal values.
    last_of_run = np.ones(len(values), dtype=bool)
    last_of_run[:-1] = values[1:] != values[:-1]
    # A score of 0 is "no evidence": never a detection, so thresholds are positive scores.
    last_of_run &= values > 0.0
    cand_t = np.concatenate([[np.inf], values[last_of_run]])
    cand_raw = np.concatenate([[base], cumulative[last_of_run]])
    best = int(np.argmax(cand_raw))
    raw = float(cand_raw[best])
    null = -profile.a_fn * n_windows
    perfect = profile.a_tp * n_windows
    score = 100.0 * (raw - null) / (perfect - null) if n_windows else 0.0
    return ProfileResult(profile.name, float(cand_t[best]), raw, null, perfect, score)


def score_corpus(
    corpus: Mapping[str, tuple[np.ndarray, Sequence[tuple[int, int]]]],
    profiles: Sequence[Profile] = PROFILES,
) -> dict[str, ProfileResult]:
    """Every profile's optimised result over the corpus."""
    return {p.name: optimise_threshold(corpus, p) for p in profiles}


def detection_counts(
    corpus: Mapping[str, tuple[np.ndarray, Sequence[tuple[int, int]]]], threshold: float
) -> dict[str, int]:
    """TP (windows detected), FN (windows missed) and FP (detections outside windows)."""
    tp = fn = fp = 0
    for scores, windows in corpus.values():
        scores = np.asarray(scores, dtype=float)
        probation = probation_rows(len(scores))
        hit = scores >= threshold
        hit[:probation] = False
        inside = np.zeros(len(scores), dtype=bool)
        for lo, hi in windows:
            inside[lo : hi + 1] = True
            if hit[lo : hi + 1].any():
                tp += 1
            else:
                fn += 1
        fp += int((hit & ~inside).sum())
    return {"tp": tp, "fn": fn, "fp": fp}
