"""Sample documents shared by the functional tests."""

SENSOR_TTL = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/sensors#> .

ex:Reading a owl:Class ; rdfs:label "Sensor reading" .
ex:Site a owl:Class .
ex:atSite a owl:ObjectProperty ; rdfs:domain ex:Reading ; rdfs:range ex:Site .
ex:humidity a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:pressure a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:integer .
ex:site_type a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:string .
ex:temperature a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
"""
