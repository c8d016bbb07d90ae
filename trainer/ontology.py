"""Ontology (OWL in Turtle) <-> column schema.

Every owl:DatatypeProperty becomes one column, named by the property IRI's local
name (the part after `#`, else after the last `/`, percent-decoded). Its rdfs:range
decides the column kind. rdflib is imported only where Turtle is parsed.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from trainer.errors import TrainingFailed
from trainer.naming import KINDS, TARGET_NAMES, declared_range, is_identifier_name, kind_of_range, local_name

# KINDS, is_identifier_name and local_name are re-exported: the rules themselves live in
# trainer/naming.py (shared with the API's recommender).
__all__ = ["KINDS", "Column", "choose_target", "is_identifier_name", "kind_of_dtype", "local_name",
           "ontology_from_frame", "parse_columns"]


@dataclass(frozen=True)
class Column:
    """One datatype property seen as a typed column."""

    name: str
    kind: str
    iri: str = ""
    label: str = ""


def parse_columns(ttl: str) -> list[Column]:
    """The ontology's datatype properties, in a stable (name) order."""
    import rdflib
    from rdflib.namespace import OWL, RDF, RDFS

    graph = rdflib.Graph()
    try:
        graph.parse(data=ttl, format="turtle")
    except Exception as exc:  # rdflib raises many parser-specific types
        raise TrainingFailed(f"ontology is not valid Turtle: {type(exc).__name__}: {exc}") from None
    columns: dict[str, Column] = {}
    for prop in set(graph.subjects(RDF.type, OWL.DatatypeProperty)):
        name = local_name(prop)
        kind = kind_of_range(declared_range(graph.objects(prop, RDFS.range)))
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
    for name in TARGET_NAMES:
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
