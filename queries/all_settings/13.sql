-- Every server setting as other sessions get it: reset_val (setting where a GUC has none), not setting
-- (pgdoctor SETs its own timeouts),
-- with its unit, the context that says what a change needs (postmaster = restart, sighup = reload),
-- whether a changed value waits for a restart, and the values the build accepts (enumvals).
SELECT
    name,
    coalesce(reset_val, setting, '') AS setting,
    coalesce(unit, '') AS unit,
    context,
    vartype,
    source,
    pending_restart,
    enumvals::text[] AS enumvals
FROM pg_settings
ORDER BY name
