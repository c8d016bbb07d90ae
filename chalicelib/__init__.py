"""The control plane's code, bundled into the Lambda package by Chalice.

Layers: `api/` (Chalice blueprints: HTTP in, HTTP out), `services/` (the rules,
no Chalice, no boto3), `adapters/` (DynamoDB, S3, Kubernetes, local processes).
`wiring.py` builds the object graph from `config.Settings`.
"""
