"""The recommender (API) and the trainer each keep a copy of the column rules
(chalicelib/naming.py, trainer/naming.py); these tests feed both the same names and
ranges and hold their answers equal, and pin the answers that once drifted."""
from __future__ import annotations

import pytest

from chalicelib import naming as api
from chalicelib.ontology import summarize
from chalicelib.recommend.profile import Column as ProfileColumn
from chalicelib.recommend.profile import column_kind, exclusion_reason
from trainer import naming as trainer
from trainer.ontology import parse_columns

XSD = "http://www.w3.org/2001/XMLSchema#"

# name -> is it an identifier (left out of the features)?
NAMES = {
    "id": True, "ID": True, "Id": True, "uuid": True, "UUID": True, "guid": True, "key": True, "Key": True,
    "user_id": True, "userId": True, "userID": True, "user-id": True, "user id": True, "USER_ID": True,
    "order_key": True, "orderKey": True, "primary_key": True, "customer.uuid": True, "sessionGuid": True,
    "uuid_v4": True, "guid_str": True, "user2Id": True, "PaidId": True,
    "paid": False, "valid": False, "android": False, "keynote": False, "Paid": False, "PAID": False,
    "invalid": False, "is_valid": False, "malic_acid": False, "fluid": False, "grid": False, "pid": False,
    "customerid": False, "guidance": False, "monkey": False, "hotkey": False, "key_figure": False,
    "id_2": False, "identity": False, "idle_time": False, "ident": False, "kid": False, "temperature": False,
    "label": False, "": False, "_": False, "sepal length": False,
}

RANGES = [
    *(XSD + name for name in ("integer", "int", "long", "short", "byte", "nonNegativeInteger", "positiveInteger",
                              "nonPositiveInteger", "negativeInteger", "unsignedLong", "unsignedInt",
                              "unsignedShort", "unsignedByte", "decimal", "float", "double", "string",
                              "normalizedString", "token", "language", "anyURI", "Name", "NCName", "boolean",
                              "dateTime", "date", "dateTimeStamp", "time", "duration", "gYear", "hexBinary",
                              "base64Binary", "QName")),
    "http://www.w3.org/2000/01/rdf-schema#Literal",
    "http://example.org/units#integer",  # an XSD local name outside the XSD namespace: not an integer
    "http://example.org/units#Money",
    None,
]

IRIS = [
    "http://example.org/sensors#temperature", "http://example.org/sensors/temperature",
    "http://example.org/ont#sepal%20length", "http://example.org/a#b/c", "http://example.org/things/",
    "urn:x:plain", "http://example.org/ont#caf%C3%A9", "http://example.org/ont#user_id",
]


@pytest.mark.parametrize(("name", "expected"), NAMES.items())
def test_identifier_names_agree(name, expected):
    assert api.is_identifier_name(name) == trainer.is_identifier_name(name) == expected


@pytest.mark.parametrize("range_iri", RANGES)
def test_range_kinds_agree(range_iri):
    assert api.kind_of_range(range_iri) == trainer.kind_of_range(range_iri)
    assert trainer.kind_of_range(range_iri) in trainer.KINDS


@pytest.mark.parametrize("iri", IRIS)
def test_column_names_agree(iri):
    assert api.local_name(iri) == trainer.local_name(iri)


@pytest.mark.parametrize("name", ["XSD", "KINDS", "XSD_KINDS", "TARGET_NAMES", "MAX_CLASSES_FOR_INTEGER_TARGET",
                                  "MAX_ONE_HOT_CATEGORIES", "FREE_TEXT_MEAN_LENGTH", "HIGH_CARDINALITY_RATIO",
                                  "MIN_ROWS_FOR_UNIQUENESS_RULE", "IDENTIFIER_LAST_WORDS", "IDENTIFIER_FIRST_WORDS"])
def test_shared_constants_agree(name):
    assert getattr(api, name) == getattr(trainer, name)


@pytest.mark.parametrize("ranges", [[], [XSD + "integer"], [XSD + "string", XSD + "integer"],
                                    ["http://example.org/units#Money", XSD + "double"],
                                    ["http://example.org/units#Money"]])
def test_the_range_that_types_a_property_with_several_agrees(ranges):
    assert api.declared_range(ranges) == trainer.declared_range(ranges)
    assert api.declared_range(list(reversed(ranges))) == api.declared_range(ranges)  # not order-dependent


def test_time_of_day_is_a_string_on_both_sides():
    assert api.kind_of_range(XSD + "time") == trainer.kind_of_range(XSD + "time") == "string"


def turtle(properties: dict[str, str | None]) -> str:
    lines = ["@prefix owl: <http://www.w3.org/2002/07/owl#> .",
             "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
             "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .",
             "@prefix ex: <http://example.org/ont#> .", "@prefix u: <http://example.org/units#> ."]
    for name, rng in properties.items():
        lines.append(f"ex:{name} a owl:DatatypeProperty" + (f" ; rdfs:range {rng}" if rng else "") + " .")
    return "\n".join(lines)


def test_an_ontology_gives_the_same_columns_and_kinds_to_the_recommender_and_the_trainer():
    content = turtle({"age": "xsd:integer", "price": "xsd:decimal", "paid": "xsd:boolean", "valid": "xsd:boolean",
                      "user_id": "xsd:string", "userId": "xsd:string", "seen": "xsd:dateTime",
                      "opens": "xsd:time", "odd": "u:integer", "free": None, "two": "xsd:string, xsd:integer",
                      "sepal%20length": "xsd:double", "label": "xsd:boolean"})

    recommender = {p.name: column_kind(p) for p in summarize(content).datatype_properties}
    trainer_side = {c.name: c.kind for c in parse_columns(content)}

    assert recommender == trainer_side
    assert trainer_side["odd"] == "string" and trainer_side["two"] == "integer" and trainer_side["opens"] == "string"
    assert "sepal length" in trainer_side


def test_the_recommender_excludes_the_identifiers_the_trainer_excludes():
    for name, expected in NAMES.items():
        reason = exclusion_reason(ProfileColumn(name, "number", ["1.0"]), ["1.0"], {"distinct": 1})
        assert (reason == "identifier-like name") == expected == trainer.is_identifier_name(name), name
