-- Transactions ended per database so far (committed and rolled back), for the transaction rate of
-- `connections --sample`: the difference between two reads, pgdoctor's own reads taken off.
SELECT datname::text AS datname, (xact_commit + xact_rollback)::int8 AS xacts
FROM pg_stat_database
WHERE datname IS NOT NULL
ORDER BY datname
