"""A Django app with CONN_MAX_AGE = None (persistent connections) under waitress: after a burst of
requests every worker thread keeps its own connection open, idle, for good. No application_name (as
most Django apps): the sessions show only their user and client address.

    python -m tests.apps.django_app HOST PORT USER DBNAME THREADS RUN_S

Loopback only; ends by itself after RUN_S seconds.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

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


def main(host: str, port: str, user: str, dbname: str, threads: int, run_s: float) -> None:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": host,
                "PORT": port,
                "USER": user,
                "NAME": dbname,
                "CONN_MAX_AGE": None,  # keep each thread's connection forever
            }
        },
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application
    from waitress.server import create_server

    server = create_server(get_wsgi_application(), host="127.0.0.1", port=0, threads=threads)
    web_port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()

    def get(_: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/count", timeout=30) as r:
            r.read()

    with ThreadPoolExecutor(threads * 2) as burst:  # the burst: more requests at once than threads
        list(burst.map(get, range(threads * 4)))
    print("ready", flush=True)
    time.sleep(run_s)
    server.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
