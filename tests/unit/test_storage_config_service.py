"""StorageConfigService on the in-memory twins: a config's URI stays inside its project's data location."""
from __future__ import annotations

import pytest
from fakes.collaborators import CountingIds, FakeS3, SteppingClock
from fakes.records import an_ontology
from fakes.repositories import MemoryOntologyRepository, MemoryStorageConfigRepository

from chalicelib.errors import InvalidInput
from chalicelib.services.data_scope import DataScope
from chalicelib.services.storage_configs import StorageConfigService

PROJECT = "proj-1"
SCOPE = DataScope(data_buckets=("data",), grants={}, artifact_bucket="artifacts")


class World:
    def __init__(self, scope: DataScope = SCOPE) -> None:
        self.configs, self.ontologies = MemoryStorageConfigRepository(), MemoryOntologyRepository()
        self.s3, self.clock = FakeS3(unreadable=("s3://data/proj-1/locked/",)), SteppingClock()
        self.service = StorageConfigService(self.configs, self.ontologies, self.s3, scope, clock=self.clock,
                                            ids=CountingIds())
        self.ontologies.add(an_ontology("onto-1", PROJECT))
        self.ontologies.add(an_ontology("onto-2", "proj-2"))

    def create(self, uri: str = f"s3://data/{PROJECT}/readings/", project: str = PROJECT, **overrides) -> dict:
        return self.service.create({"project_id": project, "name": "readings", "uri": uri, "format": "csv",
                                    **overrides})


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize("uri", [f"s3://data/{PROJECT}/", f"s3://data/{PROJECT}/readings/2026/part-0.csv"])
def test_a_uri_inside_the_projects_prefix_is_stored(world, uri):
    created = world.create(uri, ontology_id="onto-1")
    assert created["id"] == "storage-1" and created["uri"] == uri
    assert created["created_at"] == world.clock.now
    assert world.configs.get("storage-1").public() == created
    assert [c.uri for c in world.s3.checked] == [uri]  # its data was looked at before storing


@pytest.mark.parametrize("uri", [
    "s3://data/proj-2/readings/",  # another project's prefix
    "s3://data/proj-12/readings/",  # a sibling whose name starts with ours
    "s3://data/",  # the whole data bucket
    "s3://other-bucket/proj-1/",  # not a data bucket
    f"s3://artifacts/models/{PROJECT}/",  # the artifact bucket
    f"s3://artifacts/{PROJECT}/",
    f"s3://data/{PROJECT}/../proj-2/",  # climbing out
    f"s3://data/{PROJECT}/a/../../proj-2/x",
    f"s3://data/{PROJECT}//readings/",
    f"data/{PROJECT}/readings/",
])
def test_a_uri_outside_the_projects_location_is_refused(world, uri):
    with pytest.raises(InvalidInput) as caught:
        world.create(uri)
    assert caught.value.field == "uri"
    assert world.configs.rows == {}


def test_an_unreadable_location_is_refused(world):
    with pytest.raises(InvalidInput):
        world.create(f"s3://data/{PROJECT}/locked/")
    assert world.configs.rows == {}


def test_an_ontology_of_another_project_is_refused(world):
    with pytest.raises(InvalidInput) as caught:
        world.create(ontology_id="onto-2")
    assert caught.value.field == "ontology_id"
    assert world.configs.rows == {}


@pytest.mark.parametrize("uri", ["s3://data/proj-2/readings/", "s3://artifacts/x/", f"s3://data/{PROJECT}/../x/"])
def test_moving_the_uri_outside_is_refused_and_the_record_unchanged(world, uri):
    config_id = world.create()["id"]
    before = world.configs.get(config_id)
    world.clock.advance(10)
    with pytest.raises(InvalidInput) as caught:
        world.service.update(config_id, {"uri": uri, "name": "moved"})
    assert caught.value.field == "uri"
    assert world.configs.get(config_id) == before


def test_moving_the_uri_within_the_project_is_stored(world):
    config_id = world.create()["id"]
    world.clock.advance(10)
    updated = world.service.update(config_id, {"uri": f"s3://data/{PROJECT}/other/", "format": "parquet"})
    assert (updated["uri"], updated["format"], updated["updated_at"]) == (
        f"s3://data/{PROJECT}/other/", "parquet", world.clock.now)
    assert world.configs.get(config_id).public() == updated


def test_resolve_returns_the_projects_own_configs(world):
    first, second = world.create()["id"], world.create(f"s3://data/{PROJECT}/more/")["id"]
    assert [c.id for c in world.service.resolve(PROJECT, [second, first])] == [second, first]


def test_resolve_refuses_another_projects_config(world):
    theirs = world.create("s3://data/proj-2/readings/", project="proj-2")["id"]
    with pytest.raises(InvalidInput) as caught:
        world.service.resolve(PROJECT, [theirs])
    assert caught.value.field == "storage_ids"
    with pytest.raises(InvalidInput):
        world.service.resolve(PROJECT, ["storage-404"])


def test_resolve_refuses_another_projects_config_even_in_a_location_both_may_read():
    shared = ("s3://shared-bucket/sensors/",)
    world = World(scope=DataScope(data_buckets=("data",), grants={PROJECT: shared, "proj-2": shared},
                                  artifact_bucket="artifacts"))
    theirs = world.create("s3://shared-bucket/sensors/2026/", project="proj-2")["id"]
    assert [c.id for c in world.service.resolve("proj-2", [theirs])] == [theirs]
    with pytest.raises(InvalidInput) as caught:
        world.service.resolve(PROJECT, [theirs])
    assert caught.value.field == "storage_ids"


def test_resolve_notices_a_grant_withdrawn_since_the_config_was_made():
    granted = DataScope(data_buckets=("data",), grants={PROJECT: ("s3://team-bucket/sensors/",)},
                        artifact_bucket="artifacts")
    before = World(scope=granted)
    config_id = before.create("s3://team-bucket/sensors/2026/")["id"]
    after = World()  # the stage no longer grants team-bucket
    after.configs.rows = before.configs.rows
    with pytest.raises(InvalidInput) as caught:
        after.service.resolve(PROJECT, [config_id])
    assert caught.value.field == "storage_ids"
