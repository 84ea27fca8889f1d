-- Volume per source and hour of the day (UTC event time) in the curated events, which are
-- deduplicated: what each source really delivered. One row per source and hour with events.
-- param: day date
SELECT
    source,
    hour(event_time) AS hour,
    count(*) AS events,
    count_if(value_missing) AS missing_values,
    count_if(is_anomaly) AS labelled_anomalies
FROM events
WHERE event_date = :day
GROUP BY source, hour(event_time)
ORDER BY source, hour
