"""S3 adapter: the few things the control plane asks of S3, in domain terms."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.aws_faults import unavailable
from chalicelib.errors import InvalidInput, UpstreamUnavailable

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str


def parse_s3_uri(uri: Any, field: str = "uri") -> S3Location:
    if not isinstance(uri, str) or not uri:
        raise InvalidInput(f"{field} must be a string like s3://bucket/prefix", field=field)
    match = S3_URI.match(uri)
    if not match:
        raise InvalidInput(f"{field} must look like s3://bucket/prefix (got '{uri}')", field=field)
    return S3Location(match["bucket"], match["prefix"] or "")


class S3Store:
    """Reads object listings and byte ranges. The boto3 client is created on first use."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client_factory = client_factory
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def list_objects(self, location: S3Location, max_objects: int = 1000) -> list[S3Object]:
        from botocore.exceptions import BotoCoreError, ClientError

        objects: list[S3Object] = []
        kwargs = {"Bucket": location.bucket, "Prefix": location.prefix}
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(**kwargs, PaginationConfig={"MaxItems": max_objects}):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue
                    objects.append(S3Object(obj["Key"], obj["Size"], obj.get("ETag", "").strip('"')))
        except (ClientError, BotoCoreError, OSError) as exc:
            raise _translate(exc, location) from exc
        return objects

    def read_range(self, location: S3Location, key: str, start: int, end: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=location.bucket, Key=key, Range=f"bytes={start}-{end}")
            return response["Body"].read()
        except (ClientError, BotoCoreError, OSError) as exc:
            raise _translate(exc, location) from exc

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under s3://bucket/prefix (a page of at most 1,000 keys per call); how many went.

        `prefix` must end in "/" so that `models/m-1/` never takes `models/m-10/` with it."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not prefix.endswith("/"):
            raise ValueError(f"delete_prefix needs a folder prefix ending in '/', not {prefix!r}")
        deleted = 0
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if not keys:
                    continue
                response = self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                if response.get("Errors"):
                    raise UpstreamUnavailable(f"{len(response['Errors'])} objects under s3://{bucket}/{prefix} "
                                              "could not be deleted")
                deleted += len(keys)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise UpstreamUnavailable(f"could not delete s3://{bucket}/{prefix}; retry shortly") from exc
        return deleted

    def check_readable(self, location: S3Location) -> int:
        """Raise InvalidInput unless the location can be listed and its first object read.

        Returns how many objects were seen (an empty prefix is readable; training
        on it will fail later with a clear reason).
        """
        objects = self.list_objects(location, max_objects=1000)
        if objects:
            self.read_range(location, objects[0].key, 0, 0)
        return len(objects)


def _translate(exc: Exception, location: S3Location) -> Exception:
    """S3 unreachable, throttling or timed out: 503 (retry); the location refused: 400 naming the uri."""
    from botocore.exceptions import ClientError

    if unavailable(exc) or not isinstance(exc, ClientError):
        return UpstreamUnavailable("the object store is temporarily unavailable; retry shortly")
    return InvalidInput(_explain(exc, location), field="uri")


def _explain(exc: Exception, location: S3Location) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    if code == "NoSuchBucket":
        return f"bucket '{location.bucket}' does not exist"
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return f"{location.uri} is not readable by the service (access denied)"
    # The S3 error code only: botocore's message names operations and endpoints (the cause stays chained).
    return f"{location.uri} could not be read ({code or type(exc).__name__})"


class DocumentStore:
    """JSON documents of a run in the artifact bucket: the spec the trainer reads (TRAINER_SPEC_URI)
    and the manifest it writes last."""

    def __init__(self, store: S3Store) -> None:
        self.store = store

    def put_json(self, bucket: str, key: str, document: Any) -> str:
        import json

        from botocore.exceptions import BotoCoreError, ClientError

        from chalicelib.errors import UpstreamUnavailable

        try:
            self.store.client.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode(),
                                         ContentType="application/json")
        except (ClientError, BotoCoreError, OSError) as exc:
            raise UpstreamUnavailable("could not write the training spec to the artifact bucket; retry shortly"
                                      ) from exc
        return f"s3://{bucket}/{key}"

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete a run's or a model's documents and artifacts (everything under the prefix)."""
        return self.store.delete_prefix(bucket, prefix)

    def get_json(self, bucket: str, key: str, max_bytes: int) -> Any | None:
        """The JSON document at s3://bucket/key; None if there is none (or it is not JSON or too big)."""
        import json

        from botocore.exceptions import BotoCoreError, ClientError

        from chalicelib.errors import UpstreamUnavailable

        try:
            response = self.store.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}")
            body = response["Body"].read(max_bytes + 1)
        except ClientError as exc:
            # Without s3:ListBucket a missing key answers AccessDenied, not NoSuchKey.
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "InvalidRange", "AccessDenied",
                                                              "403"):
                return None
            raise UpstreamUnavailable("could not read from the artifact bucket; retry shortly") from exc
        except (BotoCoreError, OSError) as exc:
            raise UpstreamUnavailable("could not read from the artifact bucket; retry shortly") from exc
        if len(body) > max_bytes:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None
