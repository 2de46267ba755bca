-- Streaming mode: new part files, in new hour and day directories too, are picked up as they land
-- (visits_live in 00_tables.sql, every 10 s).
CREATE TEMPORARY VIEW live_visits AS SELECT * FROM visits_live;

-- Per store, per local day (the session time zone's midnight), once the watermark passes it: visits
-- by the day they ended, and their dwell buckets (lower bounds inclusive).
INSERT INTO chain_stream_daily
SELECT `store`, DATE_FORMAT(window_start, 'yyyy-MM-dd'),
       COUNT(DISTINCT CASE WHEN NOT passerby THEN person END),
       SUM(CASE WHEN NOT passerby THEN 1 ELSE 0 END),
       SUM(CASE WHEN passerby THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s < 300 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 300 AND duration_s < 1200 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 1200 AND duration_s < 3600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 3600 AND duration_s < 21600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 21600 THEN 1 ELSE 0 END)
FROM TABLE(TUMBLE(TABLE live_visits, DESCRIPTOR(end_time), INTERVAL '1' DAY))
GROUP BY `store`, window_start, window_end;

-- Chain-wide: a person once across stores.
INSERT INTO chain_stream_daily
SELECT '*', DATE_FORMAT(window_start, 'yyyy-MM-dd'),
       COUNT(DISTINCT CASE WHEN NOT passerby THEN person END),
       SUM(CASE WHEN NOT passerby THEN 1 ELSE 0 END),
       SUM(CASE WHEN passerby THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s < 300 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 300 AND duration_s < 1200 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 1200 AND duration_s < 3600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 3600 AND duration_s < 21600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT passerby AND duration_s >= 21600 THEN 1 ELSE 0 END)
FROM TABLE(TUMBLE(TABLE live_visits, DESCRIPTOR(end_time), INTERVAL '1' DAY))
GROUP BY window_start, window_end;

-- Late rows: their day's window had already closed when they were read (the window's last
-- millisecond at or behind the watermark), so the windows above drop them; here they are kept.
INSERT INTO chain_late
SELECT `store`, `date`, `hour`, visit, end_ms, CAST(CURRENT_WATERMARK(end_time) AS STRING)
FROM live_visits
WHERE CURRENT_WATERMARK(end_time) IS NOT NULL
  AND TIMESTAMPADD(DAY, 1, FLOOR(CAST(end_time AS TIMESTAMP(3)) TO DAY)) - INTERVAL '0.001' SECOND
      <= CAST(CURRENT_WATERMARK(end_time) AS TIMESTAMP(3));

-- The zone visits per scope: each store, and the chain ('*') where a person counts once.
CREATE TEMPORARY VIEW live_zone_visits AS
SELECT `store` AS scope_store, person, zone, `hour`, last_time FROM zone_visits_live
UNION ALL
SELECT '*' AS scope_store, person, zone, `hour`, last_time FROM zone_visits_live;

-- Busiest hour: distinct visitors per local hour within the day's window, the top one (window Top-N).
INSERT INTO chain_stream_busiest
SELECT scope_store, DATE_FORMAT(window_start, 'yyyy-MM-dd'), `hour`, visitors
FROM (
    SELECT scope_store, `hour`, visitors, window_start,
           ROW_NUMBER() OVER (PARTITION BY window_start, window_end, scope_store
                              ORDER BY visitors DESC, `hour` ASC) AS rn
    FROM (SELECT scope_store, `hour`, window_start, window_end, COUNT(DISTINCT person) AS visitors
          FROM TABLE(TUMBLE(TABLE live_zone_visits, DESCRIPTOR(last_time), INTERVAL '1' DAY))
          GROUP BY scope_store, `hour`, window_start, window_end)
) WHERE rn <= 1;

-- Zone ranking per day (window Top-N keeping every zone).
INSERT INTO chain_stream_zones
SELECT scope_store, DATE_FORMAT(window_start, 'yyyy-MM-dd'), zone, visitors, rn
FROM (
    SELECT scope_store, zone, visitors, window_start,
           ROW_NUMBER() OVER (PARTITION BY window_start, window_end, scope_store
                              ORDER BY visitors DESC, zone ASC) AS rn
    FROM (SELECT scope_store, zone, window_start, window_end, COUNT(DISTINCT person) AS visitors
          FROM TABLE(TUMBLE(TABLE live_zone_visits, DESCRIPTOR(last_time), INTERVAL '1' DAY))
          WHERE zone IS NOT NULL
          GROUP BY scope_store, zone, window_start, window_end)
) WHERE rn <= 10000;

-- New / returning / occasional, in three steps that each stay append-only: a person's days (one row
-- per person and day when the day closes, timed at its last millisecond), the person's previous
-- day beside each (an event-time OVER window of the two latest rows), then per day.
CREATE TEMPORARY VIEW live_visitor_days AS
SELECT scope_store, person, window_start AS day_start, window_time AS day_time
FROM TABLE(TUMBLE(TABLE live_zone_visits, DESCRIPTOR(last_time), INTERVAL '1' DAY))
GROUP BY scope_store, person, window_start, window_end, window_time;

CREATE TEMPORARY VIEW live_visitor_gaps AS
SELECT scope_store, day_start, day_time,
       COUNT(*) OVER w AS days_seen,
       TIMESTAMPDIFF(DAY, MIN(day_start) OVER w, day_start) AS gap_days
FROM live_visitor_days
WINDOW w AS (PARTITION BY scope_store, person ORDER BY day_time ROWS BETWEEN 1 PRECEDING AND CURRENT ROW);

INSERT INTO chain_stream_loyalty
SELECT scope_store, DATE_FORMAT(window_start, 'yyyy-MM-dd'), COUNT(*),
       SUM(CASE WHEN days_seen = 1 THEN 1 ELSE 0 END),
       SUM(CASE WHEN days_seen > 1 AND gap_days <= 7 THEN 1 ELSE 0 END),
       SUM(CASE WHEN days_seen > 1 AND gap_days > 7 THEN 1 ELSE 0 END)
FROM TABLE(TUMBLE(TABLE live_visitor_gaps, DESCRIPTOR(day_time), INTERVAL '1' DAY))
GROUP BY scope_store, window_start, window_end;

-- Late zone visit rows, as for the visits above.
INSERT INTO chain_late_zones
SELECT `store`, `date`, `hour`, visit, zone, last_ms, CAST(CURRENT_WATERMARK(last_time) AS STRING)
FROM zone_visits_live
WHERE CURRENT_WATERMARK(last_time) IS NOT NULL
  AND TIMESTAMPADD(DAY, 1, FLOOR(CAST(last_time AS TIMESTAMP(3)) TO DAY)) - INTERVAL '0.001' SECOND
      <= CAST(CURRENT_WATERMARK(last_time) AS TIMESTAMP(3));
