-- The chain directory's two tables and the report range. The only file with placeholders:
-- floorwalker-chain fills ${CHAIN_DIR}, ${OUT_DIR}, ${FIRST_DATE} and ${LAST_DATE}; for the Flink SQL
-- client, fill them with envsubst (docs/CHAIN.md). Every other file runs unchanged.

CREATE TABLE visits (
    visit STRING,
    person STRING,
    customer BOOLEAN,
    start_ms BIGINT,
    end_ms BIGINT,
    duration_s DOUBLE,
    passerby BOOLEAN,
    seq BIGINT,
    `store` STRING,
    `date` STRING,
    `hour` INT,
    end_time AS TO_TIMESTAMP_LTZ(end_ms, 3),
    -- Stores ship every minute but may be offline for hours: 7 h lets a store 6 h late still count.
    WATERMARK FOR end_time AS end_time - INTERVAL '7' HOUR
) PARTITIONED BY (`store`, `date`, `hour`) WITH (
    'connector' = 'filesystem',
    'path' = '${CHAIN_DIR}/visits',
    'format' = 'json'
);

CREATE TABLE zone_visits (
    visit STRING,
    person STRING,
    zone STRING,
    first_ms BIGINT,
    last_ms BIGINT,
    sightings INT,
    `store` STRING,
    `date` STRING,
    `hour` INT,
    last_time AS TO_TIMESTAMP_LTZ(last_ms, 3),
    WATERMARK FOR last_time AS last_time - INTERVAL '7' HOUR
) PARTITIONED BY (`store`, `date`, `hour`) WITH (
    'connector' = 'filesystem',
    'path' = '${CHAIN_DIR}/zone_visits',
    'format' = 'json'
);

-- Figures are reported for FIRST_DATE..LAST_DATE; history before FIRST_DATE is read too, because
-- "new" and "returning" depend on earlier visits.
CREATE TEMPORARY VIEW report_range AS SELECT '${FIRST_DATE}' AS first_date, '${LAST_DATE}' AS last_date;

CREATE TABLE chain_daily (
    `store` STRING,
    `date` STRING,
    visitors BIGINT,
    new_visitors BIGINT,
    returning_visitors BIGINT,
    occasional_visitors BIGINT,
    busiest_hour INT,
    busiest_hour_visitors BIGINT,
    passersby BIGINT,
    visits BIGINT,
    dwell_lt_5m BIGINT,
    dwell_5_20m BIGINT,
    dwell_20_60m BIGINT,
    dwell_1_6h BIGINT,
    dwell_6h_plus BIGINT
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/daily',
    'format' = 'json'
);

CREATE TABLE chain_zones (
    `store` STRING,
    `date` STRING,
    zone STRING,
    visitors BIGINT,
    `rank` BIGINT
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/zones',
    'format' = 'json'
);

-- Streaming mode's source: the visits again, not partitioned and watched for new files every 10 s.
-- A partitioned table lists its partitions once, when the job starts, so it would never see the
-- directories of hours and days that come later; every row carries store, date and hour itself.
CREATE TABLE visits_live (
    `store` STRING,
    visit STRING,
    person STRING,
    passerby BOOLEAN,
    duration_s DOUBLE,
    end_ms BIGINT,
    `date` STRING,
    `hour` INT,
    end_time AS TO_TIMESTAMP_LTZ(end_ms, 3),
    WATERMARK FOR end_time AS end_time - INTERVAL '7' HOUR
) WITH (
    'connector' = 'filesystem',
    'path' = '${CHAIN_DIR}/visits',
    'format' = 'json',
    'source.monitor-interval' = '10 s'
);

-- The zone visits, watched the same way: who was in the store (and in which zone) in which hour.
CREATE TABLE zone_visits_live (
    `store` STRING,
    visit STRING,
    person STRING,
    zone STRING,
    last_ms BIGINT,
    `date` STRING,
    `hour` INT,
    last_time AS TO_TIMESTAMP_LTZ(last_ms, 3),
    WATERMARK FOR last_time AS last_time - INTERVAL '7' HOUR
) WITH (
    'connector' = 'filesystem',
    'path' = '${CHAIN_DIR}/zone_visits',
    'format' = 'json',
    'source.monitor-interval' = '10 s'
);

-- Streaming mode's results (floorwalker-chain stream): per store and chain-wide ('*') per local day,
-- by the day a visit ended, written when the day's window closes (watermark past midnight + 7 h).
CREATE TABLE chain_stream_daily (
    `store` STRING,
    `date` STRING,
    visitors BIGINT,
    visits BIGINT,
    passerby_visits BIGINT,
    dwell_lt_5m BIGINT,
    dwell_5_20m BIGINT,
    dwell_20_60m BIGINT,
    dwell_1_6h BIGINT,
    dwell_6h_plus BIGINT
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/stream_daily',
    'format' = 'json',
    -- JSON is a row format: a part file is finished by time, then committed at the next checkpoint.
    'sink.rolling-policy.rollover-interval' = '5 s',
    'sink.rolling-policy.check-interval' = '1 s'
);

-- Per store and chain-wide per local day, from the zone visits (the people /api/stats counts):
-- visitors new to the job, returning (their previous day 1-7 days before) or occasional.
CREATE TABLE chain_stream_loyalty (
    `store` STRING,
    `date` STRING,
    visitors BIGINT,
    new_visitors BIGINT,
    returning_visitors BIGINT,
    occasional_visitors BIGINT
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/stream_loyalty',
    'format' = 'json',
    -- JSON is a row format: a part file is finished by time, then committed at the next checkpoint.
    'sink.rolling-policy.rollover-interval' = '5 s',
    'sink.rolling-policy.check-interval' = '1 s'
);

-- The local hour with most distinct visitors (ties: the earlier hour).
CREATE TABLE chain_stream_busiest (
    `store` STRING,
    `date` STRING,
    busiest_hour INT,
    busiest_hour_visitors BIGINT
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/stream_busiest',
    'format' = 'json',
    -- JSON is a row format: a part file is finished by time, then committed at the next checkpoint.
    'sink.rolling-policy.rollover-interval' = '5 s',
    'sink.rolling-policy.check-interval' = '1 s'
);

-- The zone ranking (distinct visitors; rank 1 = most, ties by zone name).
CREATE TABLE chain_stream_zones (
    `store` STRING,
    `date` STRING,
    zone STRING,
    visitors BIGINT,
    `rank` BIGINT
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/stream_zones',
    'format' = 'json',
    -- JSON is a row format: a part file is finished by time, then committed at the next checkpoint.
    'sink.rolling-policy.rollover-interval' = '5 s',
    'sink.rolling-policy.check-interval' = '1 s'
);

-- Rows that arrived behind the watermark: Flink's windows drop them silently, so they are written
-- here instead, to be counted and recomputed in batch mode.
CREATE TABLE chain_late (
    `store` STRING,
    `date` STRING,
    `hour` INT,
    visit STRING,
    end_ms BIGINT,
    `watermark` STRING
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/late',
    'format' = 'json',
    -- JSON is a row format: a part file is finished by time, then committed at the next checkpoint.
    'sink.rolling-policy.rollover-interval' = '5 s',
    'sink.rolling-policy.check-interval' = '1 s'
);

-- Zone visit rows behind their watermark (the visitors, busiest hour and zone figures miss them).
CREATE TABLE chain_late_zones (
    `store` STRING,
    `date` STRING,
    `hour` INT,
    visit STRING,
    zone STRING,
    last_ms BIGINT,
    `watermark` STRING
) WITH (
    'connector' = 'filesystem',
    'path' = '${OUT_DIR}/late_zones',
    'format' = 'json',
    -- JSON is a row format: a part file is finished by time, then committed at the next checkpoint.
    'sink.rolling-policy.rollover-interval' = '5 s',
    'sink.rolling-policy.check-interval' = '1 s'
);
