"""`chalice local`, with a listen backlog large enough for concurrent clients.

The stdlib HTTPServer behind `chalice local` listens with a backlog of 5, so a
burst of simultaneous connections (20 concurrent train requests, a benchmark)
gets "connection reset by peer" before the app sees it. API Gateway has no
such limit; this raises the local one and otherwise runs the Chalice CLI as is.
"""
import sys

from chalice.cli import main
from chalice.local import ThreadedHTTPServer

ThreadedHTTPServer.request_queue_size = 256

if __name__ == "__main__":
    sys.exit(main())
