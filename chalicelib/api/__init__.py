"""The HTTP edge: Chalice blueprints, request parsing and the one error-to-HTTP mapping."""
