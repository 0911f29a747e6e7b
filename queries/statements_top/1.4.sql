-- The top statements in one order, sorted and cut on the server (a top-N sort of the function scan, as
-- a bare ORDER BY ... LIMIT), with totals over every statement from a second scan that reads no query
-- text (pg_stat_statements(false), cheap). The sources are queries/statements_cumulative or
-- queries/statements_delta, once with texts and once without; the order is %(sort)s, a --sort name
-- (one statement, one pg_stat_statements entry, for every order). pgdoctor's own statements (marked /* pgdoctor */) are neither listed nor
-- counted: they sort first among the candidates (room for %(own_room)s of them; pgdoctor asks again
-- with more room when they filled it) and their figures are taken off the totals.
-- The share of total time is over top-level statements only: a nested one's time is in its caller's.
WITH counted AS (
    SELECT /* pgdoctor */
        count(*) AS entries,
        coalesce(sum(n.total_exec_ms) FILTER (WHERE n.toplevel AND n.calls > 0), 0)::float8 AS all_exec_ms,
        count(*) FILTER (WHERE n.queryid IS NULL) AS hidden,
        count(*) FILTER (WHERE n.temp_blks_written > 0 AND n.calls > 0) AS spilling,
        coalesce(sum(n.shared_blks_hit) FILTER (WHERE n.calls > 0), 0)::int8 AS all_shared_blks_hit,
        coalesce(sum(n.shared_blks_read) FILTER (WHERE n.calls > 0), 0)::int8 AS all_shared_blks_read,
        count(*) FILTER (WHERE n.appeared AND n.calls > 0) AS appeared_total,
        max(n.evicted) AS evicted
    FROM ({source_counts}) AS n
), candidates AS (
    SELECT
        s.*,
        strpos(coalesce(s.query, ''), '/* pgdoctor */') > 0 AS own,
        s.total_exec_ms / nullif(s.calls, 0) AS mean_exec_ms,
        s.shared_blks_read + s.local_blks_read + s.temp_blks_read AS io_blks,
        (CASE %(sort)s::text
            WHEN 'total' THEN s.total_exec_ms
            WHEN 'mean' THEN s.total_exec_ms / nullif(s.calls, 0)
            WHEN 'calls' THEN s.calls::float8
            WHEN 'rows' THEN s.rows::float8
            WHEN 'io' THEN (s.shared_blks_read + s.local_blks_read + s.temp_blks_read)::float8
            WHEN 'temp' THEN s.temp_blks_written::float8
            WHEN 'plan' THEN s.total_plan_ms
        END) AS sort_key
    FROM ({source}) AS s
    WHERE strpos(coalesce(s.query, ''), '/* pgdoctor */') > 0
        OR ((s.calls > 0 OR coalesce(s.plans, 0) > 0)
            AND (%(database)s::text IS NULL
                 OR s.dbid = (SELECT oid::int8 FROM pg_database WHERE datname = %(database)s))
            AND (%(user)s::text IS NULL
                 OR s.userid = (SELECT oid::int8 FROM pg_roles WHERE rolname = %(user)s)))
    ORDER BY strpos(coalesce(s.query, ''), '/* pgdoctor */') > 0 DESC,
        sort_key DESC NULLS LAST, s.total_exec_ms DESC, s.queryid, s.userid, s.dbid, s.toplevel
    LIMIT %(limit)s + %(own_room)s
), own AS (
    SELECT
        coalesce(sum(o.total_exec_ms) FILTER (WHERE o.toplevel AND o.calls > 0), 0)::float8 AS exec_ms,
        count(*) FILTER (WHERE o.temp_blks_written > 0 AND o.calls > 0) AS spilling,
        coalesce(sum(o.shared_blks_hit) FILTER (WHERE o.calls > 0), 0)::int8 AS shared_blks_hit,
        coalesce(sum(o.shared_blks_read) FILTER (WHERE o.calls > 0), 0)::int8 AS shared_blks_read,
        count(*) FILTER (WHERE o.appeared AND o.calls > 0) AS appeared,
        count(*) AS candidates
    FROM candidates AS o
    WHERE o.own
)
SELECT /* pgdoctor */
    r.userid, r.dbid, r.toplevel, r.queryid, r.query,
    ro.rolname::text AS username, d.datname::text AS datname,
    r.calls, r.total_exec_ms, r.mean_exec_ms, r.plans, r.total_plan_ms, r.rows,
    r.shared_blks_hit, r.shared_blks_read, r.local_blks_read, r.temp_blks_read, r.temp_blks_written,
    r.io_blks, r.io_ms, r.parallel_workers_to_launch, r.parallel_workers_launched, r.entry_age_s,
    r.appeared,
    t.entries,
    t.evicted,
    greatest(t.all_exec_ms - own.exec_ms, 0) AS all_exec_ms,
    t.hidden,
    greatest(t.spilling - own.spilling, 0) AS spilling,
    greatest(t.all_shared_blks_hit - own.shared_blks_hit, 0) AS all_shared_blks_hit,
    greatest(t.all_shared_blks_read - own.shared_blks_read, 0) AS all_shared_blks_read,
    greatest(t.appeared_total - own.appeared, 0) AS appeared_total,
    own.candidates AS own_candidates
FROM (
    SELECT * FROM candidates AS c
    WHERE NOT c.own
    ORDER BY c.sort_key DESC NULLS LAST, c.total_exec_ms DESC, c.queryid, c.userid, c.dbid, c.toplevel
    LIMIT %(limit)s
) AS r
CROSS JOIN counted AS t
CROSS JOIN own
LEFT JOIN pg_roles AS ro ON ro.oid = r.userid
LEFT JOIN pg_database AS d ON d.oid = r.dbid
ORDER BY r.sort_key DESC NULLS LAST, r.total_exec_ms DESC, r.queryid, r.userid, r.dbid, r.toplevel
