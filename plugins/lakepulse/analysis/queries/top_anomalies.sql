-- The day's ten strongest anomalies (UTC event time) by the model's anomaly score, with the
-- forecast band they left. Empty until the predictions table exists.
-- param: day date
SELECT
    source,
    event_time,
    value,
    forecast,
    forecast_lower,
    forecast_upper,
    round(anomaly_score, 3) AS anomaly_score,
    model_version
FROM predictions
WHERE event_time >= CAST(:day AS TIMESTAMP)
  AND event_time < CAST(date_add(:day, 1) AS TIMESTAMP)
  AND is_anomaly
ORDER BY anomaly_score DESC, event_time, source
LIMIT 10
