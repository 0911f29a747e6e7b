-- pg_stat_statements 1.10 (PostgreSQL 15): adds temp_blk_read_time and temp_blk_write_time (and JIT
-- counters); I/O time now includes the time spent on temp files.
SELECT
    s.userid::int8 AS userid,
    s.dbid::int8 AS dbid,
    s.toplevel,
    s.queryid,
    s.query,
    s.calls,
    s.total_exec_time AS total_exec_ms,
    s.plans,
    s.total_plan_time AS total_plan_ms,
    s.rows,
    s.shared_blks_hit,
    s.shared_blks_read,
    s.local_blks_read,
    s.temp_blks_read,
    s.temp_blks_written,
    s.blk_read_time + s.blk_write_time + s.temp_blk_read_time + s.temp_blk_write_time AS io_ms,
    NULL::int8 AS parallel_workers_to_launch,
    NULL::int8 AS parallel_workers_launched,
    NULL::float8 AS entry_age_s
FROM {pgss} AS s
