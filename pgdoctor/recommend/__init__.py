"""`pgdoctor recommend`: settings and pool sizes that fit together, computed without any server.

`units` reads and writes sizes as PostgreSQL does, `settings` holds the pgtune-compatible formulas,
`pools` the arithmetic across application pools -> PgBouncer -> PostgreSQL, `memory` the worst-case
memory check, `emit` the postgresql.conf / pgbouncer.ini / create_engine text. Pure functions; no I/O,
no psycopg, no SQLAlchemy.
"""
