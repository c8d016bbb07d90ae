"""Ontology (OWL in Turtle) <-> column schema.

Every owl:DatatypeProperty becomes one column, named by the property IRI's local
name (the part after `#`, else after the last `/`, percent-decoded). Its rdfs:range
decides the column kind. rdflib is imported only where Turtle is parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from trainer.errors import TrainingFailed

KINDS = ("integer", "number", "string", "boolean", "datetime")

_XSD_KINDS = {
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


_KEY_SUFFIX = re.compile(r"[_\-\s](id|uuid|guid)$")
_CAMEL_KEY_SUFFIX = re.compile(r"[a-z0-9](Id|ID|Uuid|UUID|Guid|GUID)$")


def is_identifier_name(name: str) -> bool:
    """id, uuid, customer_id, order-id, customerId...: names of keys, not of features ("paid", "valid" are not)."""
    lower = name.lower()
    return (
        lower in ("id", "uuid", "guid", "key")
        or lower.startswith(("uuid", "guid"))
        or bool(_KEY_SUFFIX.search(lower))
        or bool(_CAMEL_KEY_SUFFIX.search(name))
    )


@dataclass(frozen=True)
class Column:
    """One datatype property seen as a typed column."""

    name: str
    kind: str
    iri: str = ""
    label: str = ""


def local_name(iri: str) -> str:
    text = str(iri)
    tail = text.rsplit("#", 1)[1] if "#" in text else text.rstrip("/").rsplit("/", 1)[-1]
    return unquote(tail)


def parse_columns(ttl: str) -> list[Column]:
    """The ontology's datatype properties, in a stable (name) order."""
    import rdflib
    from rdflib.namespace import OWL, RDF, RDFS, XSD

    graph = rdflib.Graph()
    try:
        graph.parse(data=ttl, format="turtle")
    except Exception as exc:  # rdflib raises many parser-specific types
        raise TrainingFailed(f"ontology is not valid Turtle: {type(exc).__name__}: {exc}") from None
    columns: dict[str, Column] = {}
    for prop in set(graph.subjects(RDF.type, OWL.DatatypeProperty)):
        name = local_name(prop)
        ranges = [str(r) for r in graph.objects(prop, RDFS.range)]
        kind = "string"
        for rng in ranges:
            if rng.startswith(str(XSD)):
                kind = _XSD_KINDS.get(rng[len(str(XSD)):], "string")
                break
        label = next((str(lbl) for lbl in graph.objects(prop, RDFS.label)), "")
        if name in columns:
            raise TrainingFailed(f"ontology declares two datatype properties with local name {name!r}")
        columns[name] = Column(name=name, kind=kind, iri=str(prop), label=label)
    if not columns:
        raise TrainingFailed("ontology declares no owl:DatatypeProperty, so there are no columns to train on")
    return [columns[name] for name in sorted(columns)]


def choose_target(columns: list[Column], target_column: str | None) -> Column:
    """training_config.target_column, else a property named `label` or `target`."""
    by_name = {c.name: c for c in columns}
    candidates = ", ".join(sorted(by_name))
    if target_column is not None:
        if target_column not in by_name:
            raise TrainingFailed(
                f"target column {target_column!r} is not a datatype property of the ontology (candidates: {candidates})"
            )
        return by_name[target_column]
    for name in ("label", "target"):
        if name in by_name:
            return by_name[name]
    raise TrainingFailed(
        "no target column: set training_config.target_column or name a property 'label' or 'target' "
        f"(candidates: {candidates})"
    )


def kind_of_dtype(dtype) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


_KIND_XSD = {"integer": "integer", "number": "double", "string": "string", "boolean": "boolean", "datetime": "dateTime"}


def ontology_from_frame(frame, target: str, name: str = "Dataset") -> str:
    """A Turtle ontology with one datatype property per column of `frame` (typed from its dtypes).

    Column names are percent-encoded into the IRI, so any name round-trips through `parse_columns`.
    """
    if target not in frame.columns:
        raise ValueError(f"target {target!r} is not a column of the frame")
    cls = quote(name, safe="")
    lines = [
        "@prefix : <http://example.org/ontology#> .",
        "@prefix owl: <http://www.w3.org/2002/07/owl#> .",
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
        "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .",
        "",
        f"<http://example.org/ontology#{cls}> a owl:Class ; rdfs:label {_literal(name)} .",
    ]
    for column in frame.columns:
        iri = f"<http://example.org/ontology#{quote(str(column), safe='')}>"
        xsd = _KIND_XSD[kind_of_dtype(frame[column].dtype)]
        lines.append(
            f"{iri} a owl:DatatypeProperty ; rdfs:label {_literal(str(column))} ; "
            f"rdfs:domain <http://example.org/ontology#{cls}> ; rdfs:range xsd:{xsd} ."
        )
    return "\n".join(lines) + "\n"


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
