"""Documents the integration tests send to the local stack, and waiting for what it does."""
import time

# Sensor readings: two numeric features and a boolean target named `label`.
ONTOLOGY = """\
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/sensors#> .
ex:Reading a owl:Class .
ex:humidity a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:pressure a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:double .
ex:label a owl:DatatypeProperty ; rdfs:domain ex:Reading ; rdfs:range xsd:boolean .
"""


def wait_for(check, timeout: float = 120, every: float = 0.5):
    """`check()`'s first truthy value, asked every `every` seconds for at most `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not reached within {timeout}s")
