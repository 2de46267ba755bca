-- Streaming mode: new part files, in new hour and day directories too, are picked up as they land
-- (visits_live in 00_tables.sql, every 10 s).
CREATE TEMPORARY VIEW live_visits AS SELECT * FROM visits_live;

-- Per store, per local day (the session time zone's midnight), once the watermark passes it.
INSERT INTO chain_stream_daily
SELECT `store`, DATE_FORMAT(window_start, 'yyyy-MM-dd'),
       COUNT(DISTINCT CASE WHEN NOT passerby THEN person END),
       SUM(CASE WHEN NOT passerby THEN 1 ELSE 0 END),
       SUM(CASE WHEN passerby THEN 1 ELSE 0 END)
FROM TABLE(TUMBLE(TABLE live_visits, DESCRIPTOR(end_time), INTERVAL '1' DAY))
GROUP BY `store`, window_start, window_end;

-- Chain-wide: a person once across stores.
INSERT INTO chain_stream_daily
SELECT '*', DATE_FORMAT(window_start, 'yyyy-MM-dd'),
       COUNT(DISTINCT CASE WHEN NOT passerby THEN person END),
       SUM(CASE WHEN NOT passerby THEN 1 ELSE 0 END),
       SUM(CASE WHEN passerby THEN 1 ELSE 0 END)
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
