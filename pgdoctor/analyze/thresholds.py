"""Every threshold of `locks` and `slow-queries`, defined once: the analysis defaults to these, the
commands' options default to them (and `--help` shows them), the README's findings tables are tested
against them (tests/test_docs.py). `recommend`'s fixed thresholds live beside their arithmetic in
pgdoctor/analyze/sizing/ (memory.HEADROOM_WARN_PCT, pools.DIRECT_FACTOR, pools.ASSUMED_CPUS).

This module imports nothing: the CLI reads it at start to build its options, while the analysis
modules are imported only when a command runs.
"""

from __future__ import annotations

# ---- locks ----
# A lock wait this long is felt by users, a minute is a pile-up; for scale, log_lock_waits reports waits
# longer than deadlock_timeout, 1s by default ("Lock Management" in the PostgreSQL docs).
LOCK_WAIT_WARN_S = 10.0
LOCK_WAIT_CRIT_S = 60.0
# Sessions queued on one object: each holds one of max_connections' slots while it waits
# ("Connections and Authentication").
LOCK_QUEUE_WARN = 5
LOCK_QUEUE_CRIT = 20
# Share of the shared lock table in use: it holds max_locks_per_transaction x (max_connections +
# max_prepared_transactions) locks ("Lock Management"); when it is full, lock requests fail with
# "out of shared memory" and the hint to raise max_locks_per_transaction.
LOCK_PRESSURE_WARN_PCT = 80.0
LOCK_PRESSURE_CRIT_PCT = 95.0

# ---- slow-queries ----
# Statements active at least this long are listed under "running now" (pg_stat_activity.query_start,
# "Monitoring Database Activity").
RUNNING_MIN_S = 1.0
# A statement active this long holds its connection (and its snapshot) that long; statement_timeout
# ("Client Connection Defaults") is the server's bound.
RUNNING_WARN_S = 60.0
RUNNING_CRIT_S = 600.0
# One statement taking this share of all statement time (pg_stat_statements.total_exec_time) is the
# first thing to fix...
SHARE_WARN_PCT = 30.0
SHARE_CRIT_PCT = 60.0
# ...unless the server has done almost nothing (less than this much statement time in all, ms).
SHARE_MIN_TOTAL_MS = 1000.0
# Slow and frequent: mean execution time at least this (ms), called at least this often. 10 ms per call
# holds a pooled connection long enough to matter at a few hundred calls a second.
MEAN_WARN_MS = 10.0
CALLS_MIN = 1000
# Shared-buffer hit ratio (shared_blks_hit / (hit + read), "pg_stat_statements" and "The Cumulative
# Statistics System: pg_statio" in the docs) below this means the statement reads from disk or the OS
# cache; only over at least HIT_MIN_READS blocks read (SERVER_HIT_MIN_READS for all statements).
HIT_RATIO_MIN_PCT = 90.0
HIT_MIN_READS = 1000
SERVER_HIT_MIN_READS = 10_000
# Statistics reset (pg_stat_statements_info.stats_reset, 1.9+) less than this long ago cover only a
# short window.
RESET_RECENT_S = 3600.0
# pg_stat_statements.max nearly reached: extensions before 1.9 count no deallocations, so a table this
# full is taken as evicting the least-executed entries ("pg_stat_statements" in the docs).
MAX_FULL_PCT = 95.0
