-- The top statements in one order, sorted and cut on the server (ORDER BY the chosen column, LIMIT),
-- with totals over every statement computed by windows before the cut. The source is
-- queries/statements_cumulative or queries/statements_delta; the order is a column name pgdoctor picks
-- from a fixed list. pgdoctor's own statements (marked /* pgdoctor */) are neither listed nor counted.
-- The share of total time is over top-level statements only: a nested one's time is in its caller's.
WITH s AS (
    SELECT
        src.*,
        strpos(coalesce(src.query, ''), '/* pgdoctor */') > 0 AS own,
        src.total_exec_ms / nullif(src.calls, 0) AS mean_exec_ms,
        src.shared_blks_read + src.local_blks_read + src.temp_blks_read AS io_blks
    FROM ({source}) AS src
), ranked AS (
    SELECT
        s.*,
        count(*) OVER () AS entries,
        coalesce(sum(s.total_exec_ms) FILTER (WHERE s.toplevel AND s.calls > 0 AND NOT s.own) OVER (), 0)
            ::float8 AS all_exec_ms,
        count(*) FILTER (WHERE s.queryid IS NULL) OVER () AS hidden,
        count(*) FILTER (WHERE s.temp_blks_written > 0 AND s.calls > 0 AND NOT s.own) OVER () AS spilling,
        coalesce(sum(s.shared_blks_hit) FILTER (WHERE s.calls > 0 AND NOT s.own) OVER (), 0)
            ::int8 AS all_shared_blks_hit,
        coalesce(sum(s.shared_blks_read) FILTER (WHERE s.calls > 0 AND NOT s.own) OVER (), 0)
            ::int8 AS all_shared_blks_read,
        count(*) FILTER (WHERE s.appeared AND s.calls > 0 AND NOT s.own) OVER () AS appeared_total
    FROM s
)
SELECT /* pgdoctor */
    r.userid, r.dbid, r.toplevel, r.queryid, r.query,
    ro.rolname::text AS username, d.datname::text AS datname,
    r.calls, r.total_exec_ms, r.mean_exec_ms, r.plans, r.total_plan_ms, r.rows,
    r.shared_blks_hit, r.shared_blks_read, r.local_blks_read, r.temp_blks_read, r.temp_blks_written,
    r.io_blks, r.io_ms, r.parallel_workers_to_launch, r.parallel_workers_launched, r.entry_age_s,
    r.appeared,
    r.entries, r.evicted, r.all_exec_ms, r.hidden, r.spilling, r.all_shared_blks_hit,
    r.all_shared_blks_read, r.appeared_total
FROM (
    SELECT * FROM ranked
    WHERE NOT ranked.own
        AND (ranked.calls > 0 OR coalesce(ranked.plans, 0) > 0)
        AND (%(database)s::text IS NULL
             OR ranked.dbid = (SELECT oid::int8 FROM pg_database WHERE datname = %(database)s))
        AND (%(user)s::text IS NULL
             OR ranked.userid = (SELECT oid::int8 FROM pg_roles WHERE rolname = %(user)s))
    ORDER BY {order} DESC NULLS LAST, total_exec_ms DESC, queryid, userid, dbid, toplevel
    LIMIT %(limit)s
) AS r
LEFT JOIN pg_roles AS ro ON ro.oid = r.userid
LEFT JOIN pg_database AS d ON d.oid = r.dbid
ORDER BY r.{order} DESC NULLS LAST, r.total_exec_ms DESC, r.queryid, r.userid, r.dbid, r.toplevel
