-- Statements running right now (client backends in state active), longest first, pgdoctor's own
-- session excluded; durations in seconds by the server's clock. PostgreSQL 14+ adds query_id, the
-- queryid pg_stat_statements files the statement under (when compute_query_id is on or auto).
SELECT /* pgdoctor */
    a.pid,
    coalesce(a.application_name, '') AS application_name,
    a.usename::text AS usename,
    a.datname::text AS datname,
    a.state,
    a.wait_event_type,
    a.wait_event,
    extract(epoch FROM statement_timestamp() - a.query_start)::float8 AS duration_s,
    extract(epoch FROM statement_timestamp() - a.xact_start)::float8 AS xact_age_s,
    a.query_id AS queryid,
    a.query
FROM pg_stat_activity AS a
WHERE a.pid <> pg_backend_pid()
    AND a.backend_type = 'client backend'
    AND a.state IN ('active', 'fastpath function call')
ORDER BY a.query_start NULLS LAST, a.pid
