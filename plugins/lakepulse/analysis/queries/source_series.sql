-- Each source's values in 5-minute buckets (UTC event time) from the curated events, with the
-- anomalies the data itself is labelled with: the charts' series while no model predicts yet.
-- param: day date
SELECT
    source,
    timestamp_seconds(floor(unix_seconds(event_time) / 300) * 300) AS time,
    avg(value) AS value,
    bool_or(coalesce(is_anomaly, false)) AS labelled_anomaly,
    count(*) AS events
FROM events
WHERE event_date = :day
GROUP BY source, timestamp_seconds(floor(unix_seconds(event_time) / 300) * 300)
ORDER BY source, time
