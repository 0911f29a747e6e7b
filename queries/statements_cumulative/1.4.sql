-- Cumulative figures since the last reset, shaped for queries/statements_top: nothing appeared, nothing
-- was evicted. The inner select is the installed extension version's column set (queries/statements/).
SELECT /* pgdoctor */ v.*, false AS appeared, NULL::int8 AS evicted
FROM ({statements}) AS v
