-- Every figure is computed once per scope (scope_store): each store on its own, and the whole chain as
-- store '*', where a person (the chain-keyed visitor id) counts once however many stores they visit.

CREATE TEMPORARY VIEW scoped_zone_visits AS
SELECT z.`store` AS scope_store, z.person, z.zone, z.`date`, z.`hour`
FROM zone_visits z, report_range r WHERE z.`date` <= r.last_date
UNION ALL
SELECT '*' AS scope_store, z.person, z.zone, z.`date`, z.`hour`
FROM zone_visits z, report_range r WHERE z.`date` <= r.last_date;

CREATE TEMPORARY VIEW scoped_visits AS
SELECT v.`store` AS scope_store, v.person, v.passerby, v.duration_s, v.`date`
FROM visits v, report_range r WHERE v.`date` BETWEEN r.first_date AND r.last_date
UNION ALL
SELECT '*' AS scope_store, v.person, v.passerby, v.duration_s, v.`date`
FROM visits v, report_range r WHERE v.`date` BETWEEN r.first_date AND r.last_date;

-- A visitor-day: seen (outside a passer-by visit) on that local day, as the store's /api/stats counts.
CREATE TEMPORARY VIEW visitor_days AS
SELECT scope_store, person, `date` FROM scoped_zone_visits GROUP BY scope_store, person, `date`;
