"""A Django app with CONN_MAX_AGE = None (persistent connections) under waitress: after a burst of
requests every worker thread keeps its own connection open, idle, for good. No application_name (as
most Django apps): the sessions show only their user and client address.

    python -m tests.apps.django_app HOST PORT USER DBNAME THREADS RUN_S [DATABASE_KEYS_JSON]

With DATABASE_KEYS_JSON (`recommend -f django`'s keys for the application, applied) they replace
CONN_MAX_AGE = None; the burst then runs once, prints `requests=N errors=M` (an error: a failed request,
e.g. on a pool timeout) and the app ends. Loopback only; ends by itself after RUN_S seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path


def view(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class")
        (n,) = cur.fetchone()
    time.sleep(0.2)  # long enough for the burst to reach every worker thread
    return HttpResponse(str(n))


urlpatterns = [path("count", view)]


def main(host: str, port: str, user: str, dbname: str, threads: int, run_s: float, keys: list[str]) -> None:
    database: dict[str, Any] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": host,
        "PORT": port,
        "USER": user,
        "NAME": dbname,
        "CONN_MAX_AGE": None,  # keep each thread's connection forever
    }
    if keys:
        database.update(json.loads(keys[0]))
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        DATABASES={"default": database},
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application
    from waitress.server import create_server

    server = create_server(get_wsgi_application(), host="127.0.0.1", port=0, threads=threads)
    web_port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()

    def get(_: int) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/count", timeout=60) as r:
                r.read()
        except urllib.error.HTTPError:  # the view failed (no connection from the pool in time …)
            return 1
        return 0

    with ThreadPoolExecutor(threads * 2) as burst:  # the burst: more requests at once than threads
        errors = sum(burst.map(get, range(threads * 4)))
    if keys:
        server.close()
        print(f"requests={threads * 4} errors={errors}", flush=True)
        return
    print("ready", flush=True)
    time.sleep(run_s)
    server.close()


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        sys.argv[4],
        int(sys.argv[5]),
        float(sys.argv[6]),
        sys.argv[7:8],
    )
