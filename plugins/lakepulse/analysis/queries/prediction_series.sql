-- Actual, forecast and band per source in 5-minute buckets (UTC event time), with the largest
-- anomaly score of each bucket: the data of the anomaly charts. Empty until predictions exist.
-- param: day date
SELECT
    source,
    timestamp_seconds(floor(unix_seconds(event_time) / 300) * 300) AS time,
    avg(value) AS value,
    avg(forecast) AS forecast,
    min(forecast_lower) AS forecast_lower,
    max(forecast_upper) AS forecast_upper,
    max(anomaly_score) AS anomaly_score,
    bool_or(coalesce(is_anomaly, false)) AS anomaly
FROM predictions
WHERE event_time >= CAST(:day AS TIMESTAMP)
  AND event_time < CAST(date_add(:day, 1) AS TIMESTAMP)
GROUP BY source, timestamp_seconds(floor(unix_seconds(event_time) / 300) * 300)
ORDER BY source, time
