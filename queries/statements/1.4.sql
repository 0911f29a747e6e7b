-- pg_stat_statements 1.4 to 1.7 (PostgreSQL 9.6 to 12, and servers upgraded since without
-- ALTER EXTENSION pg_stat_statements UPDATE): one total_time, no planning counters, no toplevel flag.
-- The columns every later file returns too, under the same names; the FROM names the view in its schema.
SELECT
    s.userid::int8 AS userid,
    s.dbid::int8 AS dbid,
    true AS toplevel,
    s.queryid,
    s.query,
    s.calls,
    s.total_time AS total_exec_ms,
    NULL::int8 AS plans,
    NULL::float8 AS total_plan_ms,
    s.rows,
    s.shared_blks_hit,
    s.shared_blks_read,
    s.local_blks_read,
    s.temp_blks_read,
    s.temp_blks_written,
    s.blk_read_time + s.blk_write_time AS io_ms,
    NULL::int8 AS parallel_workers_to_launch,
    NULL::int8 AS parallel_workers_launched,
    NULL::float8 AS entry_age_s
FROM {pgss} AS s
