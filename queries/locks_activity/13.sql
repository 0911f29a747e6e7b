-- Every backend but pgdoctor's own, with the pids blocking it when it waits on a heavyweight lock;
-- pgdoctor keeps the waiters and the sessions they wait on. Ages in seconds by the server's clock.
-- Cost: this is the bare `SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE
-- wait_event_type = 'Lock'` plus a few columns. pg_blocking_pids() is asked only for sessions that
-- wait on a lock; pg_locks is not read. The role name comes from pg_get_userbyid() (a syscache
-- lookup) rather than the view's join with pg_authid. Picking the blockers out here would need the
-- union of all blocked_by arrays (a materialised CTE over every backend): dearer than sending the
-- rows. A role without pg_read_all_stats sees other roles' sessions without wait_event_type (query
-- '<insufficient privilege>'); pg_blocking_pids() needs no privilege, so it is
-- asked for those too and the picture stays whole (a privileged role has no such sessions).
SELECT
    a.pid,
    coalesce(a.backend_type, '') AS backend_type,
    a.datname::text AS datname,
    pg_get_userbyid(a.usesysid)::text AS usename,
    coalesce(a.application_name, '') AS application_name,
    a.state,
    a.wait_event_type,
    a.wait_event,
    date_part('epoch', statement_timestamp() - a.xact_start) AS xact_age_s,
    date_part('epoch', statement_timestamp() - a.query_start) AS query_age_s,
    date_part('epoch', statement_timestamp() - a.state_change) AS state_age_s,
    a.query,
    CASE
        WHEN a.wait_event_type = 'Lock' OR a.query = '<insufficient privilege>'
        THEN pg_blocking_pids(a.pid)
        ELSE '{}'::int[]
    END AS blocked_by
FROM pg_stat_activity AS a
WHERE a.pid <> pg_backend_pid()
