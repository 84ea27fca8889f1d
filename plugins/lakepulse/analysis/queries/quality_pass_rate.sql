-- Data-quality pass rate per table: the validations run on the day (UTC) and how many passed.
-- param: day date
SELECT
    `table`,
    count(*) AS validations,
    count_if(passed) AS passed,
    round(100.0 * count_if(passed) / count(*), 1) AS pass_rate_pct
FROM quality_results
WHERE validated_date = :day
GROUP BY `table`
ORDER BY `table`
