-- The locks sessions wait for (pg_locks rows not granted), named, plus the size of the lock table.
-- pg_locks (pg_lock_status()) materialises the whole lock table whatever the WHERE clause, so it is
-- read exactly once: one aggregate pass counts the entries and keeps only the waiting rows; the
-- catalog lookups then run on those few rows. PostgreSQL 13 has no pg_locks.waitstart: the wait
-- time comes from the waiting session's query_start instead (see locks_activity).
WITH scan AS MATERIALIZED (
    SELECT
        count(*) AS entries,
        count(*) FILTER (WHERE l.fastpath) AS fastpath_entries,
        array_agg(l) FILTER (WHERE NOT l.granted) AS waits
    FROM pg_locks AS l
)
SELECT
    s.entries,
    s.fastpath_entries,
    w.pid,
    w.locktype,
    w.mode,
    w.database::bigint AS database,
    d.datname::text AS datname,
    (w.database IS NULL OR w.database = 0
        OR w.database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS local,
    w.relation::bigint AS relation,
    CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END AS relname,
    w.page,
    w.tuple::int AS tuple,
    w.virtualxid,
    w.transactionid::text AS transactionid,
    w.classid::bigint AS classid,
    w.objid::bigint AS objid,
    w.objsubid::int AS objsubid,
    CASE WHEN w.classid IS NOT NULL AND w.locktype = 'object' THEN w.classid::regclass::text END AS catalog,
    NULL::text AS description,
    NULL::float8 AS wait_s
FROM scan AS s
LEFT JOIN LATERAL unnest(s.waits) AS w ON true
LEFT JOIN pg_database AS d ON d.oid = w.database
LEFT JOIN pg_class AS c
    ON c.oid = w.relation
   AND (w.database = 0 OR w.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
LEFT JOIN pg_namespace AS n ON n.oid = c.relnamespace
ORDER BY w.pid
