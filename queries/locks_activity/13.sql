-- The sessions in the lock picture: every backend waiting on a heavyweight lock, with the pids that
-- block it, and every backend one of them waits on; pgdoctor's own pid left out.
-- pg_blocking_pids() is asked only for sessions that wait on a lock (wait_event_type = 'Lock'), so
-- the cost is that of the bare blocking query; pg_locks is not read here. A role without
-- pg_read_all_stats sees other roles' sessions without wait_event_type (query '<insufficient
-- privilege>'); pg_blocking_pids() needs no privilege, so it is asked for those too, and the picture
-- stays whole (a privileged role has no such sessions: no extra cost).
-- Ages in seconds by the server's clock.
WITH a AS MATERIALIZED (
    SELECT
        a.pid,
        coalesce(a.backend_type, '') AS backend_type,
        a.datname::text AS datname,
        a.usename::text AS usename,
        coalesce(a.application_name, '') AS application_name,
        a.state,
        a.wait_event_type,
        a.wait_event,
        extract(epoch FROM statement_timestamp() - a.xact_start)::float8 AS xact_age_s,
        extract(epoch FROM statement_timestamp() - a.query_start)::float8 AS query_age_s,
        extract(epoch FROM statement_timestamp() - a.state_change)::float8 AS state_age_s,
        a.query,
        CASE
            WHEN a.wait_event_type = 'Lock' OR a.query = '<insufficient privilege>'
            THEN pg_blocking_pids(a.pid)
            ELSE '{}'::int[]
        END AS blocked_by
    FROM pg_stat_activity AS a
    WHERE a.pid <> pg_backend_pid()
)
SELECT a.*
FROM a
WHERE a.wait_event_type = 'Lock'
   OR cardinality(a.blocked_by) > 0
   OR a.pid IN (SELECT unnest(w.blocked_by) FROM a AS w)
ORDER BY a.pid
