"""MlModelService on the in-memory twins: creation, the status state machine, PUT under races, delete."""
from __future__ import annotations

import pytest
from fakes.collaborators import CountingIds, RecordingNotifier, SteppingClock
from fakes.records import an_ontology
from fakes.repositories import MemoryModelRepository, MemoryOntologyRepository, MemoryRecommendationRepository

from chalicelib.errors import Conflict, InvalidInput
from chalicelib.records import Recommendation
from chalicelib.services.ml_models import MlModelService

PROJECT = "proj-1"


class World:
    def __init__(self) -> None:
        self.models = MemoryModelRepository()
        self.ontologies = MemoryOntologyRepository()
        self.recommendations = MemoryRecommendationRepository()
        self.notifier = RecordingNotifier()
        self.clock = SteppingClock()
        self.ids = CountingIds()
        self.service = MlModelService(self.models, self.ontologies, recommendations=self.recommendations,
                                      notifier=self.notifier, clock=self.clock, ids=self.ids)
        self.ontologies.add(an_ontology("onto-1", PROJECT))
        self.ontologies.add(an_ontology("onto-other", "proj-2"))

    def create(self, **overrides) -> dict:
        body = {"project_id": PROJECT, "ontology_id": "onto-1", "name": "Predictor", "type": "random_forest",
                **overrides}
        return self.service.create(body)

    def with_status(self, status: str) -> str:
        """A stored model in `status` (set directly: some statuses only training reaches)."""
        model_id = self.create()["id"]
        self.models.replace(self.models.get(model_id).but(status=status))
        return model_id


@pytest.fixture
def world() -> World:
    return World()


def test_create_stores_a_draft_with_defaults(world):
    created = world.create(description="d", metadata={"team": "a"})
    assert created["id"] == "model-1"
    assert created["status"] == "draft"
    assert created["created_at"] == created["updated_at"] == world.clock.now
    assert created["training_config"] == {"train_test_split": 0.8, "random_seed": 42}
    assert (created["is_recommended"], created["recommendation_score"]) == (False, None)
    assert "lock_version" not in created and "runs_started" not in created
    assert world.models.get("model-1").public() == created


def test_create_marks_the_recommended_type_from_the_stored_recommendation(world):
    world.recommendations.put(Recommendation(project_id=PROJECT, ontology_id="onto-1",
                                             recommended_type="random_forest", score=91.0,
                                             created_at=world.clock.now))
    recommended = world.create(type="random_forest")
    other = world.create(type="regression")
    assert (recommended["is_recommended"], recommended["recommendation_score"]) == (True, 91.0)
    assert (other["is_recommended"], other["recommendation_score"]) == (False, None)


def test_create_refuses_an_ontology_of_another_project(world):
    with pytest.raises(InvalidInput) as caught:
        world.create(ontology_id="onto-other")
    assert caught.value.field == "ontology_id"
    assert world.models.rows == {}


@pytest.mark.parametrize("current, target", [
    ("draft", "archived"), ("draft", "deprecated"), ("archived", "draft"), ("trained", "degraded"),
    ("degraded", "trained"), ("failed", "draft"),
])
def test_allowed_status_changes(world, current, target):
    model_id = world.with_status(current)
    world.clock.advance(5)
    updated = world.service.update(model_id, {"status": target})
    assert updated["status"] == target
    assert updated["updated_at"] == world.clock.now
    assert world.models.get(model_id).status == target


@pytest.mark.parametrize("current, target, allowed", [
    ("draft", "trained", ["deprecated", "archived"]),
    ("draft", "training", ["deprecated", "archived"]),
    ("training", "archived", []),
    ("archived", "trained", ["draft"]),
])
def test_refused_status_changes_answer_409_and_change_nothing(world, current, target, allowed):
    model_id = world.with_status(current)
    before = world.models.get(model_id)
    with pytest.raises(Conflict) as caught:
        world.service.update(model_id, {"status": target, "description": "not applied"})
    body = caught.value.to_body()
    assert caught.value.status == 409
    assert body["code"] == "conflict" and body["field"] == "status"
    assert body["current_status"] == current and body["allowed_statuses"] == allowed
    assert world.models.get(model_id) == before
    assert world.notifier.events == []


def test_put_is_reapplied_on_fresh_state_after_a_racing_writer(world):
    model_id = world.create(metadata={"base": 0})["id"]

    def racer(record):
        world.models.before_replace = None
        current = world.models.get(model_id)
        world.models.replace(current.but(metadata={**current.metadata, "theirs": 1}, name="their name"))

    world.models.before_replace = racer
    updated = world.service.update(model_id, {"description": "ours", "metadata": {"ours": 2}})
    assert updated["metadata"] == {"base": 0, "theirs": 1, "ours": 2}
    assert (updated["description"], updated["name"]) == ("ours", "their name")
    assert world.models.get(model_id).public() == updated


def test_put_that_never_settles_is_a_conflict_on_id(world):
    model_id = world.create()["id"]
    racing = []

    def always_racing(record):
        if racing:
            return  # the racer's own write
        racing.append(True)
        try:
            current = world.models.get(model_id)
            world.models.replace(current.but(metadata={"writes": current.metadata.get("writes", 0) + 1}))
        finally:
            racing.clear()

    world.models.before_replace = always_racing
    with pytest.raises(Conflict) as caught:
        world.service.update(model_id, {"description": "ours"})
    assert caught.value.field == "id"
    world.models.before_replace = None
    stored = world.models.get(model_id)
    assert stored.description == "" and stored.metadata["writes"] >= 1


def test_delete_is_refused_while_training(world):
    model_id = world.with_status("training")
    with pytest.raises(Conflict) as caught:
        world.service.delete(model_id)
    assert (caught.value.field, caught.value.details["current_status"]) == ("status", "training")
    assert world.models.get(model_id).status == "training"
    assert world.notifier.events == []


def test_delete_removes_the_model_and_tells_subscribers(world):
    model_id = world.create()["id"]
    world.service.delete(model_id)
    assert world.models.find(model_id) is None
    assert world.notifier.events == [("deleted", model_id)]


def test_delete_retries_when_the_model_changes_under_it(world):
    model_id = world.create()["id"]
    original_delete = world.models.delete
    raced = []

    def delete_after_a_racing_write(record):
        if not raced:
            raced.append(True)
            world.models.replace(world.models.get(model_id).but(name="renamed"))
        original_delete(record)

    world.models.delete = delete_after_a_racing_write
    world.service.delete(model_id)
    assert world.models.find(model_id) is None
    assert world.notifier.events == [("deleted", model_id)]


def test_the_notifier_hears_status_changes_only(world):
    model_id = world.create()["id"]
    world.service.update(model_id, {"description": "no status change"})
    world.service.update(model_id, {"status": "draft"})  # the same status: no change
    assert world.notifier.events == []
    world.service.update(model_id, {"status": "archived"})
    world.service.update(model_id, {"status": "draft"})
    assert world.notifier.events == [("status", model_id, "draft", "archived", ""),
                                     ("status", model_id, "archived", "draft", "")]


def test_an_unknown_field_in_put_is_refused(world):
    model_id = world.create()["id"]
    with pytest.raises(InvalidInput) as caught:
        world.service.update(model_id, {"staus": "archived"})
    assert caught.value.field == "staus"
    assert world.models.get(model_id).status == "draft"
