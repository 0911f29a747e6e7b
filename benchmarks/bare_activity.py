"""The baseline for benchmarks/connections.py: import psycopg, connect, fetch the same rows, exit."""

import sys
from pathlib import Path

import psycopg

sql = (Path(__file__).resolve().parent.parent / "queries" / "activity" / "14.sql").read_text()
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    rows = conn.execute(sql.encode()).fetchall()
print(len(rows))
