"""An in-process twin of `chalicelib.adapters.predictor.LambdaPredictor` for tests of the API.

It calls the predictor's handler directly instead of invoking a function over HTTP, but otherwise
as Lambda does: the payload and the answer pass through JSON, a handler that raises (or returns
something JSON cannot carry, or over 6 MB) is a function error (`scripts.local_predictor.invoke`,
shared with the local twin), and the answer maps to domain errors with the adapter's own
`result_from_invoke`.

The default handler is `trainer.predictor.handler` (its module-level model cache, S3 from the
environment: AWS_ENDPOINT_URL or in-process moto); pass any `handler(event, context)` to use
another, e.g. `lambda event, context: trainer.predictor.handle(event, ModelCache(...))`.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.predictor import request_body, result_from_invoke
from scripts.local_predictor import invoke


class InProcessPredictor:
    def __init__(self, handler: Callable[[Any, Any], Any] | None = None,
                 function_name: str = "ml-models-predictor-inprocess") -> None:
        if handler is None:
            from trainer.predictor import handler  # pandas and scikit-learn load with the first test that asks
        self._handler = handler
        self.function_name = function_name
        self.payloads: list[dict] = []  # every payload asked for, as the function received it

    def predict(self, payload: dict) -> dict:
        body = request_body(payload)
        self.payloads.append(json.loads(body))
        raw, function_error = invoke(self._handler, body)
        return result_from_invoke(raw, function_error, self.function_name)
