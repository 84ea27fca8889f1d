-- Pipeline lag per hour of arrival (UTC wall clock): seconds from the record's append to Kafka
-- to its landing in the raw zone (the micro-batch's time), and the events landed that hour.
-- param: day date
SELECT
    hour(ingested_at) AS hour,
    count(*) AS events,
    round(avg(lag_seconds), 2) AS avg_lag_s,
    round(percentile_approx(lag_seconds, 0.95), 2) AS p95_lag_s,
    round(max(lag_seconds), 2) AS max_lag_s
FROM (
    SELECT
        ingested_at,
        (unix_micros(ingested_at) - unix_micros(kafka_timestamp)) / 1e6 AS lag_seconds
    FROM raw_events
    WHERE ingested_at >= CAST(:day AS TIMESTAMP)
      AND ingested_at < CAST(date_add(:day, 1) AS TIMESTAMP)
)
GROUP BY hour(ingested_at)
ORDER BY hour
