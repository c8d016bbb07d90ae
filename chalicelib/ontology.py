"""OWL ontologies in Turtle: parsing (rdflib) and the summary the API and the recommender use.

rdflib is imported inside the functions so routes that never touch an ontology
do not pay for it at cold start.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.errors import InvalidInput, PayloadTooLarge
from chalicelib.naming import XSD, XSD_KINDS, declared_range, kind_of_range, local_name

__all__ = ["INTEGER_XSD", "NUMERIC_XSD", "MAX_TRIPLES", "XSD", "DatatypeProperty", "OntologySummary",
           "local_name", "parse_turtle", "summarize"]

# The parse stops at this many triples (413): what an ontology costs to parse and summarise is
# bounded by it, whatever the Turtle's size (a collection of 240,000 items fits in 300 KB).
MAX_TRIPLES = 20_000

# The naming and typing rules are shared with the trainer (chalicelib/naming.py).
NUMERIC_XSD = frozenset(name for name, kind in XSD_KINDS.items() if kind in ("integer", "number"))
INTEGER_XSD = frozenset(name for name, kind in XSD_KINDS.items() if kind == "integer")


@dataclass
class DatatypeProperty:
    name: str
    uri: str
    range: str  # the xsd local name ("integer", "string", ...) or "" when none is declared
    domains: list[str] = field(default_factory=list)
    # The trainer's column kind (integer, number, string, boolean, datetime), from the
    # full range IRI; by default from `range` taken as an XSD local name.
    column_kind: str = ""

    def __post_init__(self) -> None:
        if not self.column_kind:
            self.column_kind = kind_of_range(XSD + self.range if self.range else None)

    @property
    def kind(self) -> str:
        """numeric, boolean, datetime or string: how the data column is typed."""
        return "numeric" if self.column_kind in ("integer", "number") else self.column_kind


@dataclass
class OntologySummary:
    classes: list[dict[str, str]]
    datatype_properties: list[DatatypeProperty]
    object_properties: list[dict[str, Any]]
    triples: int

    def to_stored(self) -> dict[str, Any]:
        """Every field (the column kinds included): what the ontology record keeps, see `from_stored`."""
        return asdict(self)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> OntologySummary:
        return cls(classes=list(data["classes"]),
                   datatype_properties=[DatatypeProperty(**p) for p in data["datatype_properties"]],
                   object_properties=list(data["object_properties"]), triples=int(data["triples"]))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for prop, raw in zip(self.datatype_properties, data["datatype_properties"], strict=True):
            raw["kind"] = prop.kind
            del raw["column_kind"]  # the response keeps its documented shape (`kind`)
        return data


class _TooManyTriples(Exception):
    pass


def parse_turtle(content: str, field_name: str = "content", max_triples: int = MAX_TRIPLES):
    """Parse Turtle into an rdflib Graph, or raise InvalidInput naming the line and problem
    (PayloadTooLarge once it holds more than `max_triples`: the parse stops there)."""
    import rdflib
    from rdflib.plugins.parsers.notation3 import BadSyntax

    class BoundedGraph(rdflib.Graph):
        added = 0

        def add(self, triple):  # the Turtle parser adds each triple through here
            self.added += 1
            if self.added > max_triples:
                raise _TooManyTriples()
            return super().add(triple)

    graph = BoundedGraph()
    try:
        graph.parse(data=content, format="turtle")
    except _TooManyTriples:
        raise PayloadTooLarge(f"{field_name} holds more than {max_triples} triples; the limit is {max_triples}",
                              field=field_name, limit=max_triples) from None
    except BadSyntax as exc:
        line = exc.lines + 1
        raise InvalidInput(
            f"{field_name} is not valid Turtle: line {line}: {exc._why}", field=field_name, line=line
        ) from None
    except Exception as exc:  # rdflib raises assorted errors for bad IRIs, prefixes, literals
        # Their messages are Python's or rdflib's internals ("string index out of range"): logged, not returned.
        logging.getLogger("ml_models.ontology").info("turtle_not_parsed", extra={
            "field": field_name, "error": f"{type(exc).__name__}: {exc}"[:500]})
        raise InvalidInput(f"{field_name} is not valid Turtle: check its IRIs, prefixes and literals "
                           "(rdflib could not read it)", field=field_name) from None
    return graph


def summarize(content: str) -> OntologySummary:
    from rdflib import OWL, RDF, RDFS

    graph = parse_turtle(content)

    def label(node) -> str:
        value = graph.value(node, RDFS.label)
        return str(value) if value is not None else local_name(node)

    classes = sorted(
        ({"name": local_name(c), "uri": str(c), "label": label(c)} for c in set(graph.subjects(RDF.type, OWL.Class))
         if not _is_blank(c)),
        key=lambda c: c["uri"],
    )
    datatype_properties = []
    for prop in sorted(set(graph.subjects(RDF.type, OWL.DatatypeProperty)), key=str):
        rng = declared_range(graph.objects(prop, RDFS.range))  # the range the trainer types the column by
        domains = sorted(local_name(d) for d in graph.objects(prop, RDFS.domain))
        datatype_properties.append(DatatypeProperty(local_name(prop), str(prop), local_name(rng) if rng else "",
                                                    domains, column_kind=kind_of_range(rng)))
    object_properties = [
        {
            "name": local_name(prop),
            "uri": str(prop),
            "domains": sorted(local_name(d) for d in graph.objects(prop, RDFS.domain)),
            "ranges": sorted(local_name(r) for r in graph.objects(prop, RDFS.range)),
        }
        for prop in sorted(set(graph.subjects(RDF.type, OWL.ObjectProperty)), key=str)
    ]
    return OntologySummary(classes, datatype_properties, object_properties, len(graph))


def _is_blank(node) -> bool:
    from rdflib import BNode

    return isinstance(node, BNode)
