-- pg_stat_statements 1.8 (PostgreSQL 13): total_time became total_exec_time, planning is counted apart
-- (plans, total_plan_time; only with pg_stat_statements.track_planning on). No toplevel flag yet.
SELECT
    s.userid::int8 AS userid,
    s.dbid::int8 AS dbid,
    true AS toplevel,
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
