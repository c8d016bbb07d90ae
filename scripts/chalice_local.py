"""`chalice local`, with a listen backlog large enough for concurrent clients, and the scheduled functions' timer.

The stdlib HTTPServer behind `chalice local` listens with a backlog of 5, so a
burst of simultaneous connections (20 concurrent train requests, a benchmark)
gets "connection reset by peer" before the app sees it. API Gateway has no
such limit; this raises the local one and otherwise runs the Chalice CLI as is.

`chalice local` does not run `@app.schedule` functions; in AWS the reconciler and the
monitoring schedule run every minute. Here a daemon thread in the same process (where the
local launcher keeps its trainer processes) runs the same handlers every
LOCAL_RECONCILE_SECONDS (default 30; 0 turns both off).

It also serves the web console's static files at /console/ (scripts/local_console.py), beside the API
on the same port; CONSOLE_WEBSOCKET_URL tells the console where the WebSocket API is.
"""
import logging
import os
import sys
import threading

from chalice.cli import main
from chalice.local import ChaliceRequestHandler, ThreadedHTTPServer

from scripts import local_console

ThreadedHTTPServer.request_queue_size = 256
log = logging.getLogger("ml_models.local_reconciler")


def reconcile_every(seconds: float, stop: threading.Event) -> None:
    from chalicelib.api import evaluations, reconcile

    while not stop.wait(seconds):
        for name, sweep in (("reconcile", reconcile.on_schedule), ("monitoring", evaluations.on_schedule)):
            try:
                sweep(None)
            except Exception:  # noqa: BLE001 — a failed sweep is retried at the next tick, as in AWS
                log.exception("local scheduled sweep failed", extra={"sweep": name})


if __name__ == "__main__":
    local_console.install(ChaliceRequestHandler, os.environ.get("CONSOLE_WEBSOCKET_URL") or None)
    period = float(os.environ.get("LOCAL_RECONCILE_SECONDS", "30") or 0)
    if period > 0:
        threading.Thread(target=reconcile_every, args=(period, threading.Event()), name="reconciler",
                         daemon=True).start()
    sys.exit(main())
