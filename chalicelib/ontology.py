"""OWL ontologies in Turtle: parsing (rdflib) and the summary the API and the recommender use.

rdflib is imported inside the functions so routes that never touch an ontology
do not pay for it at cold start.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.errors import InvalidInput

XSD = "http://www.w3.org/2001/XMLSchema#"
NUMERIC_XSD = {
    "integer", "int", "long", "short", "byte", "nonNegativeInteger", "positiveInteger",
    "negativeInteger", "nonPositiveInteger", "unsignedInt", "unsignedLong", "unsignedShort",
    "unsignedByte", "decimal", "float", "double",
}
INTEGER_XSD = NUMERIC_XSD - {"decimal", "float", "double"}


def local_name(uri: str) -> str:
    """A URI's local name, percent-decoded: the column name the trainer gives a property.

    The part after the last '#', else after the last '/'. It must stay the same as
    trainer/ontology.py's local_name (a test holds them together).
    """
    from urllib.parse import unquote

    text = str(uri)
    tail = text.rsplit("#", 1)[1] if "#" in text else text.rstrip("/").rsplit("/", 1)[-1]
    return unquote(tail)


@dataclass
class DatatypeProperty:
    name: str
    uri: str
    range: str  # the xsd local name ("integer", "string", ...) or "" when none is declared
    domains: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """numeric, boolean, datetime or string: how the data column is typed."""
        if self.range in NUMERIC_XSD:
            return "numeric"
        if self.range == "boolean":
            return "boolean"
        if self.range in {"dateTime", "date", "dateTimeStamp", "time"}:
            return "datetime"
        return "string"


@dataclass
class OntologySummary:
    classes: list[dict[str, str]]
    datatype_properties: list[DatatypeProperty]
    object_properties: list[dict[str, Any]]
    triples: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for prop, raw in zip(self.datatype_properties, data["datatype_properties"], strict=True):
            raw["kind"] = prop.kind
        return data


def parse_turtle(content: str, field_name: str = "content"):
    """Parse Turtle into an rdflib Graph, or raise InvalidInput naming the line and problem."""
    import rdflib
    from rdflib.plugins.parsers.notation3 import BadSyntax

    graph = rdflib.Graph()
    try:
        graph.parse(data=content, format="turtle")
    except BadSyntax as exc:
        line = exc.lines + 1
        raise InvalidInput(
            f"{field_name} is not valid Turtle: line {line}: {exc._why}", field=field_name, line=line
        ) from None
    except Exception as exc:  # rdflib raises assorted errors for bad IRIs, prefixes, literals
        raise InvalidInput(f"{field_name} is not valid Turtle: {exc}", field=field_name) from None
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
        rng = graph.value(prop, RDFS.range)
        rng_name = local_name(rng) if rng is not None and str(rng).startswith(XSD) else (
            local_name(rng) if rng is not None else "")
        domains = sorted(local_name(d) for d in graph.objects(prop, RDFS.domain))
        datatype_properties.append(DatatypeProperty(local_name(prop), str(prop), rng_name, domains))
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
