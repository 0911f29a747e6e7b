"""A healthy application: SQLAlchemy's QueuePool in a few threads, short transactions, think time
between them, so its pool always has idle connections to spare.

    python -m tests.apps.healthy URL APPLICATION_NAME THREADS RUN_S

Loopback only; ends by itself after RUN_S seconds.
"""

from __future__ import annotations

import sys
import threading
import time

from sqlalchemy import create_engine, text


def main(url: str, app: str, threads: int, run_s: float) -> None:
    engine = create_engine(url, pool_size=5, connect_args={"application_name": app})
    end = time.monotonic() + run_s

    def work() -> None:
        while time.monotonic() < end:
            with engine.begin() as conn:
                conn.execute(text("SELECT count(*) FROM pg_class"))
            time.sleep(0.05)

    # open the whole pool once, then let the threads use part of it
    held = [engine.connect() for _ in range(5)]
    for c in held:
        c.execute(text("SELECT 1"))
        c.close()
    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    print("ready", flush=True)
    for w in workers:
        w.join()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
