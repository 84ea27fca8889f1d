-- Trend per source: the day's events and mean value against the daily average of the `days`
-- days before it (UTC event dates), and the change of the mean in percent.
-- param: day date
-- param: days int 7
WITH daily AS (
    SELECT source, event_date, count(*) AS events, avg(value) AS mean_value
    FROM events
    WHERE event_date >= date_sub(:day, :days) AND event_date <= :day
    GROUP BY source, event_date
)
SELECT
    source,
    coalesce(sum(CASE WHEN event_date = :day THEN events END), 0) AS events_day,
    round(avg(CASE WHEN event_date < :day THEN events END), 1) AS events_per_day_before,
    round(max(CASE WHEN event_date = :day THEN mean_value END), 4) AS mean_day,
    round(avg(CASE WHEN event_date < :day THEN mean_value END), 4) AS mean_before,
    round(100 * (try_divide(max(CASE WHEN event_date = :day THEN mean_value END),
                            avg(CASE WHEN event_date < :day THEN mean_value END)) - 1), 1)
        AS mean_change_pct
FROM daily
GROUP BY source
ORDER BY source
