"""What the console's tests send to the stack, and where they write screenshots."""
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"

# Sensor readings: three numeric features and a boolean target named `label`.
ONTOLOGY = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/sensors#> .
ex:Reading a owl:Class .
ex:temperature a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:humidity a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:pressure a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:label a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:boolean .
"""
