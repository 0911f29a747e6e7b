"""Every threshold of `connections`, `locks`, `slow-queries` and `pgbouncer`, defined once: the analysis
defaults to these, the commands' options default to them (and `--help` shows them), the README's
findings tables are tested against them (tests/test_docs.py). `recommend`'s fixed thresholds live
beside their arithmetic in pgdoctor/analyze/sizing/ (memory.HEADROOM_WARN_PCT, pools.DIRECT_FACTOR,
pools.ASSUMED_CPUS).

This module imports nothing: the CLI reads it at start to build its options, while the analysis
modules are imported only when a command runs.
"""

from __future__ import annotations

# ---- connections ----
# Share of usable slots (max_connections minus the reserved ones) at which saturation is reported. A
# full server refuses ordinary clients ("Connections and Authentication: max_connections" in the
# PostgreSQL docs).
CAPACITY_WARN_PCT = 80.0
CAPACITY_CRIT_PCT = 95.0
# An idle-in-transaction session holds its locks and its snapshot; the docs'
# idle_in_transaction_session_timeout exists to bound exactly this ("Client Connection Defaults").
IDLE_XACT_WARN_S = 60.0
IDLE_XACT_CRIT_S = 600.0
# Leaked pools: many idle sessions of one application that take a large share of the slots or have sat
# unused for long (idle_session_timeout, PostgreSQL 14+, bounds these on the server side).
LEAK_MIN_IDLE = 10
LEAK_SHARE_PCT = 25.0
LEAK_IDLE_S = 600.0
# Lock waits longer than deadlock_timeout (1s by default) are logged by log_lock_waits; a minute is a
# pile-up ("Lock Management" in the docs).
BLOCKED_CRIT_S = 60.0
# A transaction holding back the xmin horizon stops VACUUM removing dead rows ("Routine Vacuuming").
XMIN_WARN_S = 3600.0
# autovacuum_freeze_max_age defaults to 200 million transactions ("Preventing Transaction ID Wraparound
# Failures"); an xmin that old forces anti-wraparound vacuums.
XMIN_CRIT_AGE = 200_000_000

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

# ---- pgbouncer ----  (https://www.pgbouncer.org/config.html, https://www.pgbouncer.org/usage.html)
# query_wait_timeout (config.html): "Maximum time queries are allowed to spend waiting for execution. If
# the query is not assigned to a server during that time, the client is disconnected." Default 120 s.
# clients_waiting turns critical when the longest wait reaches this share of it: the next clients in the
# queue are about to get errors.
PGB_WAIT_CRIT_PCT = 50.0
# With query_wait_timeout = 0 (disabled: clients wait forever) a wait this long is critical.
PGB_WAIT_CRIT_S = 30.0
# pool_mode = transaction (config.html, "Server is released back to pool after transaction finishes")
# multiplexes only as well as transactions are short; a server connection held this long by one
# transaction is reported (idle_transaction_timeout, when set, is the server-side bound; default 0 = off).
PGB_SERVER_XACT_WARN_S = 5.0
# max_client_conn (config.html): "Maximum number of client connections allowed"; past it PgBouncer
# refuses new clients ("no more connections allowed").
PGB_CLIENT_WARN_PCT = 80.0
PGB_CLIENT_CRIT_PCT = 95.0
# pool_mode = session (config.html): "Server is released back to pool after client disconnects": every
# connected client of a pool holds a server connection; clients above this many per server slot queue.
PGB_SESSION_CLIENTS_PER_SLOT = 1.0
