-- Forecast against actual per source on the day (UTC event time): mean absolute error,
-- mean absolute percentage error, the share of values inside the forecast band, anomalies.
-- param: day date
SELECT
    source,
    count(*) AS predictions,
    count_if(is_anomaly) AS anomalies,
    round(avg(abs(value - forecast)), 4) AS mae,
    round(100 * avg(try_divide(abs(value - forecast), abs(value))), 1) AS mape_pct,
    round(100.0 * count_if(value BETWEEN forecast_lower AND forecast_upper) / count(*), 1)
        AS in_band_pct
FROM predictions
WHERE event_time >= CAST(:day AS TIMESTAMP)
  AND event_time < CAST(date_add(:day, 1) AS TIMESTAMP)
  AND value IS NOT NULL
GROUP BY source
ORDER BY anomalies DESC, source
