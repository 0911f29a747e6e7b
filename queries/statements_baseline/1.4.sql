-- The first read of --interval: key and counters of every statement this role can identify (queryid
-- not hidden), no query text. pgdoctor passes them back as arrays to queries/statements_delta.
SELECT /* pgdoctor */
    s.userid, s.dbid, s.toplevel, s.queryid, s.calls, s.total_exec_ms, s.plans, s.total_plan_ms, s.rows,
    s.shared_blks_hit, s.shared_blks_read, s.local_blks_read, s.temp_blks_read, s.temp_blks_written,
    s.io_ms, s.parallel_workers_to_launch, s.parallel_workers_launched, s.entry_age_s
FROM ({statements}) AS s
WHERE s.queryid IS NOT NULL
