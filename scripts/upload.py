"""Put local files into the local stack's S3 (the embedded moto server), for training on real data.

    .venv/bin/python -m scripts.upload data.csv s3://ml-models-data-local/proj-123/sensors/
    .venv/bin/python -m scripts.upload part-*.csv s3://ml-models-data-local/proj-123/sensors/

A URI ending in "/" is a folder: each file keeps its name under it. The endpoint is
AWS_ENDPOINT_URL, else the local stack's moto server (http://127.0.0.1:MOTO_PORT, 5000);
moto takes any credentials. For a deployed stage use the AWS CLI with your own credentials.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chalicelib.adapters.s3 import parse_s3_uri
from chalicelib.errors import InvalidInput


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.upload", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("uri", help="s3://bucket/prefix/ (a folder) or s3://bucket/key (one file)")
    args = parser.parse_args(argv)
    try:
        location = parse_s3_uri(args.uri)
    except InvalidInput as exc:
        parser.error(exc.message)
    if not location.prefix.endswith("/") and len(args.files) > 1:
        parser.error("several files need a folder URI ending in '/'")
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")

    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{os.environ.get('MOTO_PORT', '5000')}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"),
                      aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                      aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
    for path in args.files:
        key = location.prefix + path.name if location.prefix.endswith("/") or not location.prefix else location.prefix
        s3.upload_file(str(path), location.bucket, key)
        print(f"s3://{location.bucket}/{key}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
