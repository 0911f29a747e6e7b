-- Every backend but pgdoctor's own, with ages in seconds measured by the server's clock.
-- pg_blocking_pids() is asked only for sessions waiting on a heavyweight lock: it is cheap then,
-- and not called once per backend on a busy server.
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
    extract(epoch FROM statement_timestamp() - a.backend_start)::float8 AS backend_age_s,
    extract(epoch FROM statement_timestamp() - a.xact_start)::float8 AS xact_age_s,
    extract(epoch FROM statement_timestamp() - a.query_start)::float8 AS query_age_s,
    extract(epoch FROM statement_timestamp() - a.state_change)::float8 AS state_age_s,
    age(a.backend_xmin) AS xmin_age,
    a.leader_pid,
    NULL::bigint AS query_id,
    a.query,
    CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ELSE '{}'::int[] END AS blocked_by
FROM pg_stat_activity AS a
WHERE a.pid <> pg_backend_pid()
ORDER BY a.pid
