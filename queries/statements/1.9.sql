-- pg_stat_statements 1.9 (PostgreSQL 14): adds toplevel (false for statements run inside functions,
-- tracked with pg_stat_statements.track = all) to the key, and the pg_stat_statements_info view.
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
    s.blk_read_time + s.blk_write_time AS io_ms,
    NULL::int8 AS parallel_workers_to_launch,
    NULL::int8 AS parallel_workers_launched,
    NULL::float8 AS entry_age_s
FROM {pgss} AS s
