-- Starts and stops of the streaming job on the day (UTC), with the supervisor's reason
-- (the records lakepulse.streaming_status.record_restart keeps under _status/restarts/).
-- param: day date
SELECT CAST(`at` AS TIMESTAMP) AS `at`, reason
FROM pipeline_restarts
WHERE CAST(`at` AS TIMESTAMP) >= CAST(:day AS TIMESTAMP)
  AND CAST(`at` AS TIMESTAMP) < CAST(date_add(:day, 1) AS TIMESTAMP)
ORDER BY `at`
