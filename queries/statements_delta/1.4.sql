-- The second read of --interval: what each statement did since the baseline read, shaped for
-- queries/statements_top. Key (userid, dbid, toplevel, queryid). A statement that appeared since, or
-- was evicted and came back (its calls went down, or on 1.11+ its stats_since is newer), counts whole
-- (appeared). Baseline statements no longer there were evicted (or reset): counted, then dropped.
-- Statements whose queryid is hidden from this role cannot be matched: they get calls = plans = 0.
WITH cur AS MATERIALIZED (
    {statements}
), base AS (
    SELECT * FROM unnest(
        %(userid)s::int8[], %(dbid)s::int8[], %(toplevel)s::bool[], %(queryid)s::int8[], %(calls)s::int8[],
        %(total_exec_ms)s::float8[], %(plans)s::int8[], %(total_plan_ms)s::float8[], %(rows)s::int8[],
        %(shared_blks_hit)s::int8[], %(shared_blks_read)s::int8[], %(local_blks_read)s::int8[],
        %(temp_blks_read)s::int8[], %(temp_blks_written)s::int8[], %(io_ms)s::float8[],
        %(parallel_workers_to_launch)s::int8[], %(parallel_workers_launched)s::int8[],
        %(entry_age_s)s::float8[]
    ) AS b (
        userid, dbid, toplevel, queryid, calls, total_exec_ms, plans, total_plan_ms, rows, shared_blks_hit,
        shared_blks_read, local_blks_read, temp_blks_read, temp_blks_written, io_ms,
        parallel_workers_to_launch, parallel_workers_launched, entry_age_s
    )
)
SELECT /* pgdoctor */
    c.userid,
    c.dbid,
    c.toplevel,
    c.queryid,
    c.query,
    CASE WHEN c.queryid IS NULL THEN 0 ELSE c.calls - coalesce(b.calls, 0) END AS calls,
    c.total_exec_ms - coalesce(b.total_exec_ms, 0) AS total_exec_ms,
    CASE WHEN c.queryid IS NULL THEN 0 ELSE c.plans - coalesce(b.plans, 0) END AS plans,
    c.total_plan_ms - coalesce(b.total_plan_ms, 0) AS total_plan_ms,
    c.rows - coalesce(b.rows, 0) AS rows,
    c.shared_blks_hit - coalesce(b.shared_blks_hit, 0) AS shared_blks_hit,
    c.shared_blks_read - coalesce(b.shared_blks_read, 0) AS shared_blks_read,
    c.local_blks_read - coalesce(b.local_blks_read, 0) AS local_blks_read,
    c.temp_blks_read - coalesce(b.temp_blks_read, 0) AS temp_blks_read,
    c.temp_blks_written - coalesce(b.temp_blks_written, 0) AS temp_blks_written,
    c.io_ms - coalesce(b.io_ms, 0) AS io_ms,
    c.parallel_workers_to_launch - coalesce(b.parallel_workers_to_launch, 0) AS parallel_workers_to_launch,
    c.parallel_workers_launched - coalesce(b.parallel_workers_launched, 0) AS parallel_workers_launched,
    c.entry_age_s,
    c.queryid IS NOT NULL AND b.userid IS NULL AS appeared,
    (
        SELECT count(*) FROM base AS gone
        WHERE NOT EXISTS (
            SELECT FROM cur AS c2
            WHERE (c2.userid, c2.dbid, c2.toplevel, c2.queryid)
                = (gone.userid, gone.dbid, gone.toplevel, gone.queryid)
        )
    ) AS evicted
FROM cur AS c
LEFT JOIN base AS b
    ON (b.userid, b.dbid, b.toplevel, b.queryid) = (c.userid, c.dbid, c.toplevel, c.queryid)
    AND b.calls <= c.calls
    AND (b.entry_age_s IS NULL OR c.entry_age_s IS NULL OR c.entry_age_s >= b.entry_age_s)
