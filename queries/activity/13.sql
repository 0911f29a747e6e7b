-- Every backend but pgdoctor's own, read once for every command (connections, locks, slow-queries),
-- with ages in seconds by the server's clock (date_part returns float8 on every version; extract()
-- returns numeric from PostgreSQL 14 on, slower at 100,000 rows).
-- pg_blocking_pids() is asked only for sessions that wait on a heavyweight lock, and for sessions whose
-- wait this role may not see (another role's session without pg_read_all_stats shows no
-- wait_event_type and the query '<insufficient privilege>'; pg_blocking_pids() needs no privilege), so
-- connections and locks see the whole waits-for graph. It is cheap for a session that does not wait,
-- and never called once per backend for a privileged role. pg_locks is not read here.
-- PostgreSQL 13 has no query_id (the row's default, NULL).
SELECT
    a.pid,
    coalesce(a.backend_type, '') AS backend_type,
    a.datname::text AS datname,
    a.usename::text AS usename,
    coalesce(a.application_name, '') AS application_name,
    host(a.client_addr) AS client_addr,
    a.client_hostname,
    a.state,
    a.wait_event_type,
    a.wait_event,
    date_part('epoch', statement_timestamp() - a.backend_start) AS backend_age_s,
    date_part('epoch', statement_timestamp() - a.xact_start) AS xact_age_s,
    date_part('epoch', statement_timestamp() - a.query_start) AS query_age_s,
    date_part('epoch', statement_timestamp() - a.state_change) AS state_age_s,
    age(a.backend_xmin) AS xmin_age,
    a.query,
    CASE
        WHEN a.wait_event_type = 'Lock' OR a.query = '<insufficient privilege>'
        THEN pg_blocking_pids(a.pid)
        ELSE '{}'::int[]
    END AS blocked_by
FROM pg_stat_activity AS a
WHERE a.pid <> pg_backend_pid()
ORDER BY a.pid
