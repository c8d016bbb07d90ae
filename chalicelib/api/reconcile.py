"""The scheduled reconcile (every minute in AWS; a timer in the local stack): settles active runs from
the cluster (chalicelib/services/reconciler.py) and answers its summary."""
from chalicelib.observability import bind_request
from chalicelib.wiring import services


def on_schedule(lambda_context=None) -> dict:
    """One sweep. Errors of single runs are counted in the summary; one that stops the sweep itself (the
    runs index unreachable) is raised, so the invocation is recorded as failed and the next one retries."""
    bind_request(None, lambda_context)
    return services().reconciler.reconcile()
