"""Fixtures for trainer tests: callback receivers and the S3 buckets on the shared moto server."""
from __future__ import annotations

import boto3
import pytest
from trainer_helpers import ARTIFACT_BUCKET, DATA_BUCKET, CallbackReceiver


@pytest.fixture
def receiver_factory():
    made: list[CallbackReceiver] = []

    def make(**kwargs) -> CallbackReceiver:
        receiver = CallbackReceiver(**kwargs)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def receiver(receiver_factory) -> CallbackReceiver:
    return receiver_factory()


@pytest.fixture(scope="session")
def s3(moto_server):
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    for bucket in (ARTIFACT_BUCKET, DATA_BUCKET):
        client.create_bucket(Bucket=bucket)
    return client
