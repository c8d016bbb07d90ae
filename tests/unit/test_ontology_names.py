"""The API and the trainer must name a property's data column the same way."""
from __future__ import annotations

import pytest

from chalicelib.ontology import local_name as api_local_name
from trainer.ontology import local_name as trainer_local_name


@pytest.mark.parametrize("uri", [
    "http://example.org/sensors#temperature",
    "http://example.org/sensors/temperature",
    "http://example.org/ont#sepal%20length",
    "http://example.org/a#b/c",
    "http://example.org/things/",
    "urn:x:plain",
])
def test_column_names_agree(uri):
    assert api_local_name(uri) == trainer_local_name(uri)


def test_names_are_percent_decoded():
    assert api_local_name("http://example.org/ont#sepal%20length") == "sepal length"
