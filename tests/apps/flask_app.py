"""The Flask-SQLAlchemy incident: a threaded WSGI app (waitress) whose request reads, then makes a slow
call (an "LLM call": time.sleep) with its session, and so its transaction, still open. A load generator
in the same process keeps its threads busy.

    python -m tests.apps.flask_app URL APPLICATION_NAME THREADS SLEEP_S RUN_S

Loopback only; ends by itself after RUN_S seconds.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from waitress.server import create_server


def main(url: str, app_name: str, threads: int, sleep_s: float, run_s: float) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"application_name": app_name}}
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

    def client(delay: float) -> None:
        time.sleep(delay)  # staggered: transactions start and end at different moments
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/answer", timeout=sleep_s + 30) as r:
                    r.read()
            except OSError:
                time.sleep(0.1)

    clients = [
        threading.Thread(target=client, args=(i * sleep_s / threads,), daemon=True) for i in range(threads)
    ]
    for c in clients:
        c.start()
    print("ready", flush=True)
    time.sleep(run_s)
    server.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
