-- Daily figures per store and chain-wide: the definitions of docs/ANALYTICS.md (aggregator.analytics).

-- New (first visiting day ever), returning (the previous one 1..7 days before) or occasional.
CREATE TEMPORARY VIEW loyalty AS
SELECT scope_store, `date`,
       SUM(CASE WHEN prev_date IS NULL THEN 1 ELSE 0 END) AS new_visitors,
       SUM(CASE WHEN prev_date IS NOT NULL
                 AND TIMESTAMPDIFF(DAY, CAST(prev_date AS DATE), CAST(`date` AS DATE)) <= 7 THEN 1 ELSE 0 END)
           AS returning_visitors,
       SUM(CASE WHEN prev_date IS NOT NULL
                 AND TIMESTAMPDIFF(DAY, CAST(prev_date AS DATE), CAST(`date` AS DATE)) > 7 THEN 1 ELSE 0 END)
           AS occasional_visitors,
       COUNT(*) AS visitors
FROM (
    SELECT d.scope_store, d.person, d.`date`, MAX(p.`date`) AS prev_date
    FROM visitor_days d LEFT JOIN visitor_days p
      ON p.scope_store = d.scope_store AND p.person = d.person AND p.`date` < d.`date`
    GROUP BY d.scope_store, d.person, d.`date`
)
GROUP BY scope_store, `date`;

-- Busiest local hour by distinct visitors; ties go to the earlier hour.
CREATE TEMPORARY VIEW busiest AS
SELECT scope_store, `date`, `hour`, visitors FROM (
    SELECT scope_store, `date`, `hour`, visitors,
           ROW_NUMBER() OVER (PARTITION BY scope_store, `date` ORDER BY visitors DESC, `hour` ASC) AS rn
    FROM (SELECT scope_store, `date`, `hour`, COUNT(DISTINCT person) AS visitors
          FROM scoped_zone_visits GROUP BY scope_store, `date`, `hour`)
) WHERE rn = 1;

-- Visits (not passers-by) by the day they started, and their dwell buckets (lower bounds inclusive).
CREATE TEMPORARY VIEW visit_counts AS
SELECT scope_store, `date`,
       SUM(CASE WHEN NOT passerby THEN 1 ELSE 0 END) AS visits,
       SUM(CASE WHEN NOT passerby AND duration_s < 300 THEN 1 ELSE 0 END) AS dwell_lt_5m,
       SUM(CASE WHEN NOT passerby AND duration_s >= 300 AND duration_s < 1200 THEN 1 ELSE 0 END) AS dwell_5_20m,
       SUM(CASE WHEN NOT passerby AND duration_s >= 1200 AND duration_s < 3600 THEN 1 ELSE 0 END) AS dwell_20_60m,
       SUM(CASE WHEN NOT passerby AND duration_s >= 3600 AND duration_s < 21600 THEN 1 ELSE 0 END) AS dwell_1_6h,
       SUM(CASE WHEN NOT passerby AND duration_s >= 21600 THEN 1 ELSE 0 END) AS dwell_6h_plus
FROM scoped_visits GROUP BY scope_store, `date`;

-- Passers-by: people with a passer-by visit that day who were not visitors that day.
CREATE TEMPORARY VIEW passersby AS
SELECT p.scope_store, p.`date`, COUNT(*) AS passersby
FROM (SELECT scope_store, person, `date` FROM scoped_visits WHERE passerby GROUP BY scope_store, person, `date`) p
LEFT JOIN visitor_days d ON d.scope_store = p.scope_store AND d.person = p.person AND d.`date` = p.`date`
WHERE d.person IS NULL
GROUP BY p.scope_store, p.`date`;

CREATE TEMPORARY VIEW day_keys AS
SELECT scope_store, `date` FROM loyalty
UNION SELECT scope_store, `date` FROM visit_counts
UNION SELECT scope_store, `date` FROM passersby;

INSERT OVERWRITE chain_daily
SELECT k.scope_store, k.`date`,
       COALESCE(l.visitors, 0), COALESCE(l.new_visitors, 0), COALESCE(l.returning_visitors, 0),
       COALESCE(l.occasional_visitors, 0), b.`hour`, COALESCE(b.visitors, 0), COALESCE(p.passersby, 0),
       COALESCE(v.visits, 0), COALESCE(v.dwell_lt_5m, 0), COALESCE(v.dwell_5_20m, 0), COALESCE(v.dwell_20_60m, 0),
       COALESCE(v.dwell_1_6h, 0), COALESCE(v.dwell_6h_plus, 0)
FROM day_keys k
JOIN report_range r ON k.`date` BETWEEN r.first_date AND r.last_date
LEFT JOIN loyalty l ON l.scope_store = k.scope_store AND l.`date` = k.`date`
LEFT JOIN busiest b ON b.scope_store = k.scope_store AND b.`date` = k.`date`
LEFT JOIN visit_counts v ON v.scope_store = k.scope_store AND v.`date` = k.`date`
LEFT JOIN passersby p ON p.scope_store = k.scope_store AND p.`date` = k.`date`;
