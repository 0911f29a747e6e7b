-- One tick of `connections --sample`: what changes the picture of each client session, and nothing more.
-- Per session: its state, whether it waits on a heavyweight lock, and when its transaction and its state
-- began (a new transaction has a new xact_start; backend_xid is only assigned to transactions that
-- write). Who the session is (database, user, application, client address, start) comes only for
-- sessions started since the previous tick ($1, seconds since the epoch, a margin already taken off)
-- and for the pids the sampler asks again ($2). One row with pid NULL carries the time when no client
-- is connected. Ages are the server's clock, as in every other query.
SELECT
    extract(epoch FROM statement_timestamp())::float8 AS now,
    a.pid,
    a.state,
    a.wait_event_type = 'Lock' AS blocked,
    extract(epoch FROM a.xact_start)::float8 AS xact_start,
    extract(epoch FROM a.state_change)::float8 AS state_change,
    CASE WHEN a.backend_start >= to_timestamp($1) OR a.pid = ANY($2)
        THEN extract(epoch FROM a.backend_start)::float8 END AS backend_start,
    CASE WHEN a.backend_start >= to_timestamp($1) OR a.pid = ANY($2) THEN a.datname::text END AS datname,
    CASE WHEN a.backend_start >= to_timestamp($1) OR a.pid = ANY($2) THEN a.usename::text END AS usename,
    CASE WHEN a.backend_start >= to_timestamp($1) OR a.pid = ANY($2)
        THEN coalesce(a.application_name, '') END AS application_name,
    CASE WHEN a.backend_start >= to_timestamp($1) OR a.pid = ANY($2) THEN host(a.client_addr) END
        AS client_addr
FROM (SELECT 1) AS one
LEFT JOIN pg_stat_activity AS a ON a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
