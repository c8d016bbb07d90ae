"""Hand-written ontologies (Turtle) used by the trainer tests."""

CUSTOMER_TTL = """
@prefix : <http://example.org/shop#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

:Customer a owl:Class ; rdfs:label "Customer" .
:customer_id a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:string .
:age a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:integer .
:income a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:decimal .
:plan a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:string .
:is_active a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:boolean .
:signup_date a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:dateTime .
:description a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:string .
:spend a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:double .
:label a owl:DatatypeProperty ; rdfs:domain :Customer ; rdfs:range xsd:string .
:placedBy a owl:ObjectProperty ; rdfs:domain :Customer .
"""
