-- The settings pgdoctor reasons about. reset_val, not setting: pgdoctor SETs its own timeouts in its
-- session, and what matters is what every other session gets (postgresql.conf, ALTER SYSTEM/DATABASE/ROLE).
-- reset_val is NULL for a few settings (those with no reset value); then the current setting is it.
SELECT name, coalesce(reset_val, setting) AS setting, coalesce(unit, '') AS unit, context, pending_restart
FROM pg_settings
WHERE name = ANY(%s)
ORDER BY name
