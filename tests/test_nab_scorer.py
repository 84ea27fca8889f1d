"""The NAB scorer (bench/nab/scoring.py) on hand-made cases worked out in the comments.

Constants used below (S is NAB's scaled sigmoid, S(p) = 2 / (1 + e^(5p)) - 1):
S(-1)   = 2 / (1 + e^-5)   - 1 = 0.986614  (the largest TP reward, normalised to 1)
S(-0.6) = 2 / (1 + e^-3)   - 1 = 0.905148
S(-0.2) = 2 / (1 + e^-1)   - 1 = 0.462117
S(0.25) = 2 / (1 + e^1.25) - 1 = -0.554600
S(1.25) = 2 / (1 + e^6.25) - 1 = -0.996146
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a top-level folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from bench.nab import runner, scoring  # noqa: E402

pytestmark = pytest.mark.ml

STANDARD, LOW_FP, LOW_FN = scoring.PROFILES
N = 20  # rows per hand-made series: probation = min(floor(0.15 * 20), 750) = 3 rows
WINDOW = [(10, 14)]  # rows 10..14 inclusive: width w = 5, right edge r = 14


def raw(detected_rows, windows=WINDOW, profile=STANDARD, n=N):
    """Raw score of a series whose score is 1 on ``detected_rows`` and 0 elsewhere."""
    scores = np.zeros(n)
    scores[list(detected_rows)] = 1.0
    return scoring.raw_score_at(scores, windows, scoring.probation_rows(n), profile, 0.5)


def test_constants_and_probation():
    assert scoring.probation_rows(N) == 3
    assert scoring.probation_rows(4033) == 604
    assert scoring.probation_rows(10_000) == 750
    assert float(scoring.scaled_sigmoid(-1.0)) == pytest.approx(0.986614, abs=1e-6)
    assert float(scoring.scaled_sigmoid(3.5)) == -1.0


def test_true_positive_early_scores_more_than_late():
    # Row 10: p = -(14 - 10 + 1) / 5 = -1 -> S(-1) / S(-1) = 1.
    assert raw([10]) == pytest.approx(1.0)
    # Row 14: p = -(14 - 14 + 1) / 5 = -0.2 -> 0.462117 / 0.986614 = 0.468387.
    assert raw([14]) == pytest.approx(0.468387, abs=1e-6)


def test_false_positive_without_an_earlier_window_costs_a_fp():
    # Row 5 lies before the only window: -A_FP = -0.11; the window is missed: -1.
    assert raw([5]) == pytest.approx(-0.11 - 1.0)
    # Twice as expensive in the low-FP profile: -0.22 - 1.
    assert raw([5], profile=LOW_FP) == pytest.approx(-0.22 - 1.0)


def test_false_positive_right_after_a_window_is_cheap_far_after_it_is_not():
    # TP at row 12: p = -(14 - 12 + 1) / 5 = -0.6 -> 0.905148 / 0.986614 = 0.917428.
    tp = 0.917428
    # FP at row 15: position |15 - 14| / (5 - 1) = 0.25 -> 0.11 * S(0.25) = -0.061006.
    assert raw([12, 15]) == pytest.approx(tp - 0.061006, abs=1e-5)
    # FP at row 19: position 5 / 4 = 1.25 -> 0.11 * S(1.25) = -0.109576.
    assert raw([12, 19]) == pytest.approx(tp - 0.109576, abs=1e-5)


def test_missed_windows_cost_a_fn_each():
    two_windows = [(5, 7), (10, 14)]
    assert raw([], windows=two_windows) == pytest.approx(-2.0)
    assert raw([], windows=two_windows, profile=LOW_FN) == pytest.approx(-4.0)


def test_probation_rows_count_for_nothing():
    # Row 1 is inside the 3-row probation: no FP; the window is missed: -1.
    assert raw([1]) == pytest.approx(-1.0)
    # A window inside the probation cannot be detected: a sure FN.
    assert raw([1], windows=[(0, 2)]) == pytest.approx(-1.0)


def test_only_the_first_detection_in_a_window_counts():
    # Rows 10..13 all detect; only row 10 (reward 1.0) counts, the others add nothing.
    assert raw([10, 11, 12, 13]) == pytest.approx(1.0)
    assert raw([12, 13, 14]) == pytest.approx(0.917428, abs=1e-5)


def test_threshold_optimisation_and_normalisation():
    # Series A: the only window at rows 10..14; 0.9 at row 5 (a FP), 0.6 at row 12 (a TP).
    a = np.zeros(N)
    a[5], a[12] = 0.9, 0.6
    # Series B: no window; 0.7 at row 8 and 0.1 at row 9 (both FPs when detected).
    b = np.zeros(N)
    b[8], b[9] = 0.7, 0.1
    corpus = {"a": (a, WINDOW), "b": (b, [])}
    # Standard profile, raw score by threshold t:
    #   t > 0.9:        nothing detected                    -> -1          (the FN)
    #   0.7 < t <= 0.9: FP at A5                            -> -0.11 - 1   = -1.11
    #   0.6 < t <= 0.7: FPs at A5, B8                       -> -0.22 - 1   = -1.22
    #   0.1 < t <= 0.6: FPs at A5, B8, TP at A12            -> -0.22 + 0.917428 = 0.697428
    #   t <= 0.1:       one more FP at B9                   -> 0.587428
    # Best: t = 0.6, raw 0.697428; null = -1, perfect = +1 (one window):
    # normalised 100 * (0.697428 + 1) / (1 + 1) = 84.8714.
    result = scoring.optimise_threshold(corpus, STANDARD)
    assert result.threshold == pytest.approx(0.6)
    assert result.raw == pytest.approx(0.697428, abs=1e-5)
    assert (result.null, result.perfect) == (-1.0, 1.0)
    assert result.score == pytest.approx(84.8714, abs=1e-3)
    # Low-FP profile: 0.917428 - 2 * 0.22 = 0.477428 still beats -1 -> 73.8714.
    low_fp = scoring.optimise_threshold(corpus, LOW_FP)
    assert low_fp.threshold == pytest.approx(0.6)
    assert low_fp.score == pytest.approx(73.8714, abs=1e-3)
    # Low-FN profile: null = -2, perfect = 1; 100 * (0.697428 + 2) / 3 = 89.9143.
    assert scoring.optimise_threshold(corpus, LOW_FN).score == pytest.approx(89.9143, abs=1e-3)
    assert scoring.detection_counts(corpus, 0.6) == {"tp": 1, "fn": 0, "fp": 2}


def test_a_detector_that_never_fires_scores_zero_and_a_perfect_one_scores_100():
    # All-zero scores: a zero is never a detection, so every window is a FN: the null score.
    silent = {"a": (np.zeros(N), WINDOW)}
    assert scoring.optimise_threshold(silent, STANDARD).score == pytest.approx(0.0)
    perfect = np.zeros(N)
    perfect[10] = 1.0  # the window's first row, nothing else
    assert scoring.optimise_threshold({"a": (perfect, WINDOW)}, STANDARD).score == pytest.approx(
        100.0
    )


def test_vectorised_sweep_matches_the_row_by_row_reference():
    rng = np.random.default_rng(7)
    corpus = {}
    for k in range(5):
        n = 300 + 40 * k
        windows = [(100, 130), (200, 215)] if k % 2 else [(150, 190)]
        corpus[f"s{k}"] = (np.round(rng.random(n), 2), windows)
    for profile in scoring.PROFILES:
        best = scoring.optimise_threshold(corpus, profile)
        thresholds = np.unique(np.concatenate([s for s, _ in corpus.values()]))
        by_threshold = [
            sum(
                scoring.raw_score_at(s, w, scoring.probation_rows(len(s)), profile, t)
                for s, w in corpus.values()
            )
            for t in thresholds
        ]
        assert best.raw == pytest.approx(max(by_threshold))
        assert best.raw == pytest.approx(
            sum(
                scoring.raw_score_at(s, w, scoring.probation_rows(len(s)), profile, best.threshold)
                for s, w in corpus.values()
            )
        )


def test_windows_are_found_by_timestamp():
    ts = np.datetime64("2014-04-01T00:00") + np.arange(20) * np.timedelta64(5, "m")
    windows = scoring.window_indices(ts, [("2014-04-01 00:10:00.000000", "2014-04-01 00:30:00")])
    assert windows == [(2, 6)]


NAB_DIR = runner.DEFAULT_DATA
TWO_SMALL = [
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",  # 1,243 rows
    "realAdExchange/exchange-3_cpc_results.csv",  # 1,538 rows
]


@pytest.mark.skipif(
    not (NAB_DIR / "data").is_dir(), reason=f"NAB data not found at {NAB_DIR} (LAKEPULSE_NAB_DIR)"
)
def test_bench_runs_two_series_end_to_end(tmp_path):
    code = runner.main(
        [
            "--data-dir",
            str(NAB_DIR),
            "--out",
            str(tmp_path),
            "--workers",
            "1",
            "--series",
            *TWO_SMALL,
        ]
    )
    assert code == 0
    for name in TWO_SMALL:
        with (NAB_DIR / "data" / name).open() as f:
            source = list(csv.reader(f))
        with (tmp_path / name).open() as f:
            written = list(csv.reader(f))
        assert written[0] == ["timestamp", "value", "anomaly_score"]
        assert len(written) == len(source)  # one line per data row, and the header
        assert [r[0] for r in written[1:]] == [r[0] for r in source[1:]]  # same rows, in order
        assert [float(r[1]) for r in written[1:]] == [float(r[1]) for r in source[1:]]
        scores = [float(r[2]) for r in written[1:]]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert max(scores) > 0.0
    summary = json.loads((tmp_path / "scores.json").read_text())
    assert set(summary["dev"]) == {p.name for p in scoring.PROFILES}
    assert summary["dev_detail"]["series"] == 2
    assert summary["dev_detail"]["windows"] == 5  # 2 + 3 labelled windows
    assert all(-1000 < s <= 100 for s in summary["dev"].values())
