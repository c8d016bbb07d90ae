"""Column rules the API (ontology summary, recommender) shares with the trainer, API side.

How a datatype property names its column (the IRI's local name), which column kind
its `rdfs:range` gives, which names are identifiers (the trainer leaves them out of
the features), the target's default names and the thresholds of the exclusion and
task rules. The trainer keeps the same rules in `trainer/naming.py` (the Lambda package
holds no trainer/); `tests/unit/test_shared_rules_parity.py` holds the two equal.
Standard library only.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

XSD = "http://www.w3.org/2001/XMLSchema#"
KINDS = ("integer", "number", "string", "boolean", "datetime")

# XSD local name -> column kind; any other range (or none) is a string column. xsd:time
# is a string: a time of day without a date has no year/month/day to expand into.
XSD_KINDS = {
    **dict.fromkeys(
        (
            "integer", "int", "long", "short", "byte", "nonNegativeInteger", "positiveInteger",
            "nonPositiveInteger", "negativeInteger", "unsignedLong", "unsignedInt", "unsignedShort",
            "unsignedByte",
        ),
        "integer",
    ),
    **dict.fromkeys(("decimal", "float", "double"), "number"),
    **dict.fromkeys(("string", "normalizedString", "token", "language", "anyURI", "Name", "NCName"), "string"),
    "boolean": "boolean",
    **dict.fromkeys(("dateTime", "date", "dateTimeStamp"), "datetime"),
}

TARGET_NAMES = ("label", "target")
MAX_CLASSES_FOR_INTEGER_TARGET = 20
MAX_ONE_HOT_CATEGORIES = 50
FREE_TEXT_MEAN_LENGTH = 40
HIGH_CARDINALITY_RATIO = 0.5
MIN_ROWS_FOR_UNIQUENESS_RULE = 20

# A name's words: separators (_ - space . ...) and camelCase boundaries split it, so
# "userId" is user|Id, "order_key" order|key, "IDNumber" ID|Number, "paid" one word.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
IDENTIFIER_LAST_WORDS = frozenset({"id", "uuid", "guid", "key"})
IDENTIFIER_FIRST_WORDS = frozenset({"uuid", "guid"})


def local_name(iri: str) -> str:
    """The column a property IRI names: after the last '#', else after the last '/', percent-decoded."""
    text = str(iri)
    tail = text.rsplit("#", 1)[1] if "#" in text else text.rstrip("/").rsplit("/", 1)[-1]
    return unquote(tail)


def name_words(name: str) -> list[str]:
    """The words of a column name, lower-cased."""
    return [word.lower() for word in _WORD.findall(name)]


def is_identifier_name(name: str) -> bool:
    """Names of keys, not of features: id, ID, uuid, user_id, order-id, userId, order_key, uuid_v4.

    The last word is id/uuid/guid/key, or the first is uuid/guid; a word inside another
    word does not count ("paid", "valid", "android", "keynote", "guidance" are features).
    """
    words = name_words(name)
    return bool(words) and (words[-1] in IDENTIFIER_LAST_WORDS or words[0] in IDENTIFIER_FIRST_WORDS)


def declared_range(ranges: Iterable[str]) -> str | None:
    """The range that types a property with several: the first XSD one (in IRI order), else the first."""
    ordered = sorted(str(r) for r in ranges)
    return next((r for r in ordered if r.startswith(XSD)), ordered[0] if ordered else None)


def kind_of_range(range_iri: str | None) -> str:
    """The column kind an `rdfs:range` IRI gives (integer, number, string, boolean, datetime)."""
    if not range_iri or not str(range_iri).startswith(XSD):
        return "string"
    return XSD_KINDS.get(str(range_iri)[len(XSD):], "string")
