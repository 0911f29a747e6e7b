-- One tick of `connections --sample`: what changes the picture of each client session, and nothing more.
-- Per session: its state, whether it waits on a heavyweight lock, and when its transaction and its state
-- began (a new transaction has a new xact_start; backend_xid is only assigned to transactions that
-- write). Who the session is (start, database, user, application, client address) comes only for
-- sessions started since the previous tick (`since`, seconds since the epoch, a margin already taken
-- off) and for the pids the sampler asks again (`ask`). One row with pid NULL carries the time when no
-- client is connected. Times are the server's clock, as in every other query. Every backend comes back:
-- its type comes with who it is, and the sampler leaves the others out (a filter on backend_type costs
-- the server a fifth more per read at 1,000 sessions: benchmarks/README.md).
SELECT
    date_part('epoch', statement_timestamp()) AS now,
    a.pid,
    a.state,
    a.wait_event_type = 'Lock' AS blocked,
    date_part('epoch', a.xact_start) AS xact_start,
    date_part('epoch', a.state_change) AS state_change,
    CASE WHEN a.fresh THEN date_part('epoch', a.backend_start) END AS backend_start,
    CASE WHEN a.fresh THEN a.datname::text END AS datname,
    CASE WHEN a.fresh THEN a.usename::text END AS usename,
    CASE WHEN a.fresh THEN coalesce(a.application_name, '') END AS application_name,
    CASE WHEN a.fresh THEN host(a.client_addr) END AS client_addr,
    CASE WHEN a.fresh THEN a.backend_type END AS backend_type
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT
        s.pid, s.state, s.wait_event_type, s.xact_start, s.state_change, s.backend_start, s.datname,
        s.usename, s.application_name, s.client_addr, s.backend_type,
        s.backend_start >= to_timestamp(%(since)s) OR s.pid = ANY(%(ask)s) AS fresh
    FROM pg_stat_activity AS s
    WHERE s.pid <> pg_backend_pid()
) AS a ON true
