"""What `pgdoctor recommend` computes: settings and pool sizes that fit together, without any server.

`units` reads and writes sizes as PostgreSQL does, `settings` holds the pgtune-compatible formulas,
`pools` the arithmetic across application pools -> PgBouncer -> PostgreSQL, `memory` the worst-case
memory check. Pure functions; no I/O, no psycopg, no SQLAlchemy. The postgresql.conf / pgbouncer.ini /
create_engine text is rendering: `pgdoctor.render.recommend_text`.
"""
