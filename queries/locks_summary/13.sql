-- Every entry of the lock table (`--all`), grouped by lock type, object and mode: how many are held,
-- how many awaited, by how many sessions. Relation-level types (relation, page, tuple, extend) are
-- grouped per relation, object locks per catalog, the rest (advisory, transactionid, virtualxid, …)
-- per type and database; pgdoctor's own locks left out. One scan of pg_locks: about a microsecond
-- per entry, so only on request.
WITH g AS (
    SELECT
        l.locktype,
        l.database,
        CASE WHEN l.locktype IN ('relation', 'page', 'tuple', 'extend') THEN l.relation END AS relation,
        CASE WHEN l.locktype = 'object' THEN l.classid END AS classid,
        l.mode,
        l.pid,
        count(*) FILTER (WHERE l.granted) AS held,
        count(*) FILTER (WHERE NOT l.granted) AS awaited,
        count(*) FILTER (WHERE l.fastpath) AS fastpath
    FROM pg_locks AS l
    WHERE l.pid IS DISTINCT FROM pg_backend_pid()
    GROUP BY 1, 2, 3, 4, 5, 6
),
k AS (
    SELECT
        g.locktype, g.database, g.relation, g.classid, g.mode,
        sum(g.held)::bigint AS held,
        sum(g.awaited)::bigint AS awaited,
        sum(g.fastpath)::bigint AS fastpath,
        count(DISTINCT g.pid)::int AS sessions
    FROM g
    GROUP BY 1, 2, 3, 4, 5
)
SELECT
    k.locktype,
    k.mode,
    k.database::bigint AS database,
    d.datname::text AS datname,
    (k.database IS NULL OR k.database = 0
        OR k.database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS local,
    k.relation::bigint AS relation,
    CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END AS relname,
    k.classid::bigint AS classid,
    CASE WHEN k.classid IS NOT NULL THEN k.classid::regclass::text END AS catalog,
    k.held,
    k.awaited,
    k.fastpath,
    k.sessions
FROM k
LEFT JOIN pg_database AS d ON d.oid = k.database
LEFT JOIN pg_class AS c
    ON c.oid = k.relation
   AND (k.database = 0 OR k.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
LEFT JOIN pg_namespace AS n ON n.oid = c.relnamespace
ORDER BY k.awaited DESC, k.held DESC, k.locktype, k.mode
