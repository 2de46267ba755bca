-- Zone ranking per store and across the chain: distinct visitors seen in the zone that day;
-- rank 1 = most, ties by zone name (as /api/stats/zones).
INSERT OVERWRITE chain_zones
SELECT scope_store, `date`, zone, visitors,
       ROW_NUMBER() OVER (PARTITION BY scope_store, `date` ORDER BY visitors DESC, zone ASC) AS `rank`
FROM (
    SELECT z.scope_store, z.`date`, z.zone, COUNT(DISTINCT z.person) AS visitors
    FROM scoped_zone_visits z JOIN report_range r ON z.`date` BETWEEN r.first_date AND r.last_date
    WHERE z.zone IS NOT NULL
    GROUP BY z.scope_store, z.`date`, z.zone
);
