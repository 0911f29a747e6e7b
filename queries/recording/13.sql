-- Which server a recording (`pgdoctor record`) is of: its system identifier (pg_control_system(),
-- executable by every role; the same on a standby as on its primary) and the database connected to.
SELECT
    (SELECT c.system_identifier::text FROM pg_control_system() AS c) AS system_identifier,
    current_database()::text AS database
