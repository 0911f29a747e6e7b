-- pg_stat_statements_info (extension 1.9+, PostgreSQL 14+): entries deallocated because
-- pg_stat_statements.max was reached, and when the statistics were last reset. The view is named in
-- the schema the extension lives in.
SELECT /* pgdoctor */
    i.dealloc,
    to_json(i.stats_reset) #>> '{}' AS stats_reset,
    extract(epoch FROM statement_timestamp() - i.stats_reset)::float8 AS stats_reset_age_s
FROM {info} AS i
