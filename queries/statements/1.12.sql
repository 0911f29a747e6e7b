-- pg_stat_statements 1.12 (PostgreSQL 18): adds parallel_workers_to_launch/parallel_workers_launched
-- (and wal_buffers_full); the rest as 1.11.
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
    s.shared_blk_read_time + s.shared_blk_write_time + s.local_blk_read_time + s.local_blk_write_time
        + s.temp_blk_read_time + s.temp_blk_write_time AS io_ms,
    s.parallel_workers_to_launch,
    s.parallel_workers_launched,
    extract(epoch FROM statement_timestamp() - s.stats_since)::float8 AS entry_age_s
FROM {pgss} AS s
