-- Where pg_stat_statements stands in the connected database: its installed version and schema (it may
-- live in any schema), the version the server ships, and whether the library is loaded. The library
-- defines its settings (pg_stat_statements.max, an integer) only when shared_preload_libraries loads
-- it; shared_preload_libraries itself is visible to superusers and pg_read_all_settings only (NULL).
SELECT /* pgdoctor */
    current_database()::text AS database,
    e.extversion::text AS version,
    n.nspname::text AS schema,
    quote_ident(n.nspname::text) AS schema_ident,
    (SELECT a.default_version::text FROM pg_available_extensions AS a
     WHERE a.name = 'pg_stat_statements') AS default_version,
    EXISTS (SELECT FROM pg_settings WHERE name = 'pg_stat_statements.max' AND vartype = 'integer')
        AS loaded,
    (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload_libraries
FROM (SELECT) AS one
LEFT JOIN pg_extension AS e ON e.extname = 'pg_stat_statements'
LEFT JOIN pg_namespace AS n ON n.oid = e.extnamespace
