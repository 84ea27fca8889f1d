-- Data-quality pass rate per day and table over the `days` days ending on `day`.
-- param: day date
-- param: days int 14
SELECT
    validated_date AS day,
    `table`,
    count(*) AS validations,
    count_if(passed) AS passed,
    round(100.0 * count_if(passed) / count(*), 1) AS pass_rate_pct
FROM quality_results
WHERE validated_date > date_sub(:day, :days) AND validated_date <= :day
GROUP BY validated_date, `table`
ORDER BY day, `table`
