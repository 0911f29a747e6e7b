"""The Flask-SQLAlchemy incident: a threaded WSGI app (waitress) whose request reads, then makes a slow
call (an "LLM call": time.sleep) with its session, and so its transaction, still open. A load generator
in the same process keeps its threads busy.

    python -m tests.apps.flask_app URL APPLICATION_NAME THREADS SLEEP_S RUN_S \
        [POOL_SIZE MAX_OVERFLOW TIMEOUT_S]

With the pool arguments (`recommend`'s pool applied) the engine gets them; POOL_SIZE `null` is NullPool
(behind PgBouncer, driver-side prepared statements off). At the end it prints `requests=N errors=M` (an
error: a request that failed, e.g. on a pool timeout). Loopback only; ends by itself after RUN_S seconds.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from sqlalchemy.pool import NullPool
from waitress.server import create_server


def engine_options(app_name: str, pool: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"connect_args": {"application_name": app_name}}
    if pool and pool[0] == "null":
        options = {
            "poolclass": NullPool,
            "connect_args": {**options["connect_args"], "prepare_threshold": None},
        }
    elif pool:
        options.update(pool_size=int(pool[0]), max_overflow=int(pool[1]), pool_timeout=float(pool[2]))
    return options


def main(url: str, app_name: str, threads: int, sleep_s: float, run_s: float, pool: list[str]) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app_name, pool)
    db = SQLAlchemy(app)

    @app.route("/answer")
    def answer() -> str:
        n = db.session.execute(text("SELECT count(*) FROM pg_class")).scalar()
        time.sleep(sleep_s)  # the slow call, inside the transaction
        return str(n)

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()
    end = time.monotonic() + run_s
    done = [0, 0]  # requests, errors
    lock = threading.Lock()

    def client(delay: float) -> None:
        time.sleep(delay)  # staggered: transactions start and end at different moments
        while time.monotonic() < end:
            failed = 0
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/answer", timeout=sleep_s + 30) as r:
                    r.read()
            except urllib.error.HTTPError:  # the request failed in the application (a pool timeout …)
                failed = 1
            except OSError:
                time.sleep(0.1)
                continue
            with lock:
                done[0] += 1
                done[1] += failed

    clients = [
        threading.Thread(target=client, args=(i * sleep_s / threads,), daemon=True) for i in range(threads)
    ]
    for c in clients:
        c.start()
    print("ready", flush=True)
    time.sleep(run_s)
    for c in clients:
        c.join(sleep_s + 35)
    server.close()
    print(f"requests={done[0]} errors={done[1]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6:9])
