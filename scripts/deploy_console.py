"""Publish the web console to its bucket (infra/cloudformation/console.yaml): every file the local stack
serves from console/, plus a config.json generated for the stage, and nothing else.

    python -m scripts.deploy_console --bucket $CONSOLE_BUCKET \
        --websocket-url $WS_URL --hosted-ui-url $HOSTED_UI --client-id $AUTH_AUDIENCE \
        --redirect-uri $CONSOLE_URL

config.json tells the console what it cannot know by itself: the WebSocket URL, the hosted UI's
authorization and token endpoints with the public app client and the redirect URI (authorization
code + PKCE), and, only when the API is on another origin, its base URL (by default the distribution
forwards /api/* to the API, so the console calls its own origin). Its shape and checks are
scripts/local_console.py's, the same the local stack serves.

Objects are uploaded with their content type and `Cache-Control: no-cache` (CloudFront revalidates,
so a deploy is seen at once); objects of an earlier deploy that are no longer in console/ are
deleted. No secret goes into the bucket: the app client is public and config.json is public to
anyone who can load the console.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.local_console import CONFIG_FILE, CONSOLE_DIR, TYPES, config_document, servable_files

log = logging.getLogger("deploy_console")
SCOPES = ("openid", "email", "profile")
CACHE_CONTROL = "no-cache"


@dataclass(frozen=True)
class Published:
    uploaded: list[str]
    deleted: list[str]


def hosted_ui_auth(hosted_ui_url: str, client_id: str, redirect_uri: str,
                   scopes: tuple[str, ...] = SCOPES) -> dict[str, Any]:
    """The `auth` of config.json for a Cognito hosted UI (identity.yaml's HostedUiUrl output)."""
    base = hosted_ui_url.rstrip("/")
    return {"authorize_url": f"{base}/oauth2/authorize", "token_url": f"{base}/oauth2/token",
            "client_id": client_id, "redirect_uri": redirect_uri, "scopes": list(scopes)}


def publish(s3, bucket: str, config: dict[str, Any], root: Path = CONSOLE_DIR) -> Published:
    """Upload root's servable files and `config` as config.json to `bucket`; delete what is left of before."""
    files = servable_files(root)
    uploaded = []
    for key, path in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=TYPES[path.suffix],
                      CacheControl=CACHE_CONTROL)
        uploaded.append(key)
    s3.put_object(Bucket=bucket, Key=CONFIG_FILE, Body=json.dumps(config, indent=2).encode(),
                  ContentType="application/json", CacheControl=CACHE_CONTROL)
    uploaded.append(CONFIG_FILE)
    keep = set(uploaded)
    stale = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
             for obj in page.get("Contents", []) if obj["Key"] not in keep]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in stale[start:start + 1000]],
                                                 "Quiet": True})
    return Published(uploaded=uploaded, deleted=stale)


def main(argv: list[str] | None = None, s3=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy_console", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="console.yaml's BucketName output")
    parser.add_argument("--websocket-url", required=True, help="the app stack's WebsocketConnectEndpointURL")
    parser.add_argument("--hosted-ui-url", help="identity.yaml's HostedUiUrl output (omit: paste-a-token only)")
    parser.add_argument("--client-id", help="identity.yaml's AppClientId output (= AUTH_AUDIENCE)")
    parser.add_argument("--redirect-uri", help="console.yaml's ConsoleUrl output")
    parser.add_argument("--api-base-url", default="",
                        help="the API's base URL if not this origin's /api/* (it then needs CORS and a CSP entry)")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    auth = None
    if args.hosted_ui_url:
        if not (args.client_id and args.redirect_uri):
            parser.error("--hosted-ui-url needs --client-id and --redirect-uri")
        auth = hosted_ui_auth(args.hosted_ui_url, args.client_id, args.redirect_uri)
    try:
        config = config_document(args.websocket_url, auth, args.api_base_url or None)
    except ValueError as exc:
        parser.error(str(exc))
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", region_name=args.region)
    published = publish(s3, args.bucket, config)
    log.info("console published to s3://%s: %d objects, %d stale deleted", args.bucket, len(published.uploaded),
             len(published.deleted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
