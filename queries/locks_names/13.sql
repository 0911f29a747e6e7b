-- Names of the databases and roles of the sessions in the lock picture (a handful of oids), so that
-- locks_activity need not join pg_database and pg_authid for every backend.
SELECT 'database' AS kind, d.oid::bigint AS oid, d.datname::text AS name
FROM pg_database AS d
WHERE d.oid = ANY(%s)
UNION ALL
SELECT 'role', r.oid::bigint, r.rolname::text
FROM pg_roles AS r
WHERE r.oid = ANY(%s)
