-- The settings pgdoctor reasons about. reset_val, not setting: pgdoctor SETs its own timeouts in its
-- session, and what matters is what every other session gets (postgresql.conf, ALTER SYSTEM/DATABASE/ROLE).
SELECT name, reset_val AS setting, coalesce(unit, '') AS unit, context, pending_restart
FROM pg_settings
WHERE name = ANY(%s)
ORDER BY name
