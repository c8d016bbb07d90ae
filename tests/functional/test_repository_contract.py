"""One repository contract (chalicelib/services/ports.py), held by the in-memory twin
(tests/fakes/repositories.py) and the DynamoDB adapter (chalicelib/adapters/dynamo.py) alike.

Every test runs twice: against the twin, and against the real tables deployed into moto.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from fakes import repositories as memory
from fakes.records import a_model, a_run, a_storage_config, an_ontology, at

from chalicelib.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, StaleRecord
from chalicelib.records import MlModel, Ontology, Recommendation, Record
from chalicelib.services.ports import RETRIES_ON_STALE
from chalicelib.services.validation import MAX_ITEM_BYTES


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Kind:
    repo: str  # attribute of the `repos` fixture
    kind: str
    key_name: str
    make: object
    ours: tuple[str, object]  # a change of one field
    theirs: tuple[str, object]  # a competing change of another field


KINDS = {
    "model": Kind("models", "model", "id", a_model, ("name", "ours"), ("description", "theirs")),
    "ontology": Kind("ontologies", "ontology", "id", an_ontology, ("name", "ours"), ("description", "theirs")),
    "storage config": Kind("storage_configs", "storage config", "id", a_storage_config, ("name", "ours"),
                           ("format", "parquet")),
    "training run": Kind("runs", "training run", "run_id", a_run, ("failure_reason", "ours"),
                         ("job_name", "theirs")),
}
LISTED_BY_PROJECT = ("model", "ontology", "storage config")


@pytest.fixture(params=["memory", "dynamodb"])
def repos(request):
    if request.param == "memory":
        return SimpleNamespace(backend="memory", models=memory.MemoryModelRepository(),
                               ontologies=memory.MemoryOntologyRepository(),
                               storage_configs=memory.MemoryStorageConfigRepository(),
                               runs=memory.MemoryTrainingRunRepository(),
                               recommendations=memory.MemoryRecommendationRepository())
    request.getfixturevalue("aws")
    from chalicelib.adapters import dynamo
    from chalicelib.adapters.tables import bind_tables
    from chalicelib.config import Settings

    bind_tables(Settings.from_environ())
    return SimpleNamespace(backend="dynamodb", models=dynamo.ModelRepository(),
                           ontologies=dynamo.OntologyRepository(),
                           storage_configs=dynamo.StorageConfigRepository(), runs=dynamo.TrainingRunRepository(),
                           recommendations=dynamo.RecommendationRepository())


@pytest.fixture(params=list(KINDS))
def kind(request) -> Kind:
    return KINDS[request.param]


def race_once(repos, repo, key: str, field: str, value, change):
    """`change`, with a competing write of `field` landing between its read and its write, once.

    The twin's racer is its `before_replace` hook; against DynamoDB the change function itself
    writes first (the same interleaving, seen from the table)."""
    if repos.backend == "memory":
        def hook(record):
            repo.before_replace = None
            repo.replace(repo.get(key).but(**{field: value}))

        repo.before_replace = hook
        return change
    raced = []

    def racing(current):
        if not raced:
            raced.append(True)
            repo.replace(repo.get(key).but(**{field: value}))
        return change(current)

    return racing


def test_add_then_get_round_trips_every_field(repos, kind):
    repo = getattr(repos, kind.repo)
    record = kind.make(uid("k"), uid("p"))
    added = repo.add(record)
    got = repo.get(record.key)
    assert got.public() == record.public()
    assert got.lock_version is not None and got.lock_version == added.lock_version
    assert got.values() == added.values()
    assert repo.find(record.key) == got


def test_unset_optional_fields_come_back_unset(repos):
    model = MlModel(id=uid("m"), project_id=uid("p"), ontology_id="o", name="n", type="regression",
                    status="draft", created_at=at(0), updated_at=at(0))
    repos.models.add(model)
    got = repos.models.get(model.id)
    assert got.public() == model.public()
    assert (got.trained_at, got.recommendation_score, got.runs_started) == (None, None, 0)


def test_add_of_an_existing_key_is_a_conflict_and_keeps_the_stored_record(repos, kind):
    repo = getattr(repos, kind.repo)
    record = kind.make(uid("k"), uid("p"))
    repo.add(record)
    with pytest.raises(Conflict) as caught:
        repo.add(record.but(**dict([kind.ours])))
    assert caught.value.field == kind.key_name
    assert caught.value.message == f"{kind.kind} '{record.key}' already exists"
    assert repo.get(record.key).public() == record.public()


def test_get_of_an_unknown_key_is_not_found_and_find_is_none(repos, kind):
    repo = getattr(repos, kind.repo)
    key = uid("missing")
    with pytest.raises(NotFound) as caught:
        repo.get(key)
    assert (caught.value.message, caught.value.field) == (f"{kind.kind} '{key}' does not exist", kind.key_name)
    assert repo.find(key) is None


def test_replace_of_a_stale_read_fails_and_leaves_the_stored_record(repos, kind):
    repo = getattr(repos, kind.repo)
    record = repo.add(kind.make(uid("k"), uid("p")))
    first, second = repo.get(record.key), repo.get(record.key)
    written = repo.replace(first.but(**dict([kind.ours])))
    assert written.lock_version != first.lock_version
    with pytest.raises(StaleRecord):
        repo.replace(second.but(**dict([kind.theirs])))
    assert repo.get(record.key).values() == written.values()


def test_replace_after_a_concurrent_delete_fails(repos, kind):
    repo = getattr(repos, kind.repo)
    record = repo.add(kind.make(uid("k"), uid("p")))
    repo.delete(repo.get(record.key))
    with pytest.raises(StaleRecord):
        repo.replace(record.but(**dict([kind.ours])))
    assert repo.find(record.key) is None


def test_a_record_over_the_item_limit_is_refused_naming_its_biggest_field(repos, kind):
    repo = getattr(repos, kind.repo)
    field = kind.ours[0]
    huge = kind.make(uid("k"), uid("p")).but(**{field: "x" * (MAX_ITEM_BYTES + 1)})
    with pytest.raises(PayloadTooLarge) as caught:
        repo.add(huge)
    assert caught.value.field == field and str(MAX_ITEM_BYTES) in caught.value.message
    assert repo.find(huge.key) is None
    stored = repo.add(huge.but(**dict([kind.ours])))
    with pytest.raises(PayloadTooLarge):
        repo.replace(repo.get(stored.key).but(**{field: "x" * (MAX_ITEM_BYTES + 1)}))
    assert repo.get(stored.key).values() == stored.values()


def test_replace_of_a_record_never_read_from_the_store_fails(repos, kind, request):
    repo = getattr(repos, kind.repo)
    record = kind.make(uid("k"), uid("p"))
    with pytest.raises(StaleRecord):
        repo.replace(record)
    assert repo.find(record.key) is None


def test_delete_of_a_stale_read_fails_and_a_fresh_one_deletes(repos, kind):
    repo = getattr(repos, kind.repo)
    record = repo.add(kind.make(uid("k"), uid("p")))
    stale = repo.get(record.key)
    repo.replace(repo.get(record.key).but(**dict([kind.ours])))
    with pytest.raises(StaleRecord):
        repo.delete(stale)
    assert repo.get(record.key).public() == record.but(**dict([kind.ours])).public()
    repo.delete(repo.get(record.key))
    assert repo.find(record.key) is None


def test_modify_reapplies_its_change_on_fresh_state_after_a_racing_writer(repos, kind):
    repo = getattr(repos, kind.repo)
    record = repo.add(kind.make(uid("k"), uid("p")))
    seen = []

    def change(current):
        seen.append(current)
        return current.but(**dict([kind.ours]))

    result = repo.modify(record.key, race_once(repos, repo, record.key, *kind.theirs, change))
    assert len(seen) == 2  # the first write was refused; the change ran again on what the racer wrote
    expected = record.but(**dict([kind.ours, kind.theirs])).public()
    assert result.public() == expected
    assert repo.get(record.key).public() == expected


def test_modify_that_never_settles_is_a_conflict(repos, kind):
    repo = getattr(repos, kind.repo)
    record = repo.add(kind.make(uid("k"), uid("p")))
    field, _ = kind.theirs
    attempts = []

    def always_raced(current):
        attempts.append(current)
        repo.replace(repo.get(record.key).but(**{field: f"theirs-{len(attempts)}"}))
        return current.but(**dict([kind.ours]))

    with pytest.raises(Conflict) as caught:
        repo.modify(record.key, always_raced, field="model_id")
    assert len(attempts) == RETRIES_ON_STALE
    assert caught.value.field == "model_id"
    assert caught.value.message == f"{kind.kind} '{record.key}' is being changed concurrently; retry"
    stored = repo.get(record.key)
    assert getattr(stored, field) == f"theirs-{RETRIES_ON_STALE}"
    assert getattr(stored, kind.ours[0]) == getattr(record, kind.ours[0])  # ours never landed
    with pytest.raises(Conflict) as default_field:
        repo.modify(record.key, always_raced)
    assert default_field.value.field == kind.key_name


def test_modify_of_an_unknown_key_is_not_found(repos, kind):
    with pytest.raises(NotFound):
        getattr(repos, kind.repo).modify(uid("missing"), lambda current: current)


def read_all(page, limit: int) -> tuple[list[str], int]:
    keys, token, first = [], None, None
    while True:
        items, token = page(limit, token)
        assert len(items) <= limit
        first = len(items) if first is None else first
        keys += [i.key for i in items]
        if token is None:
            return keys, first


@pytest.mark.parametrize("name", LISTED_BY_PROJECT)
def test_list_by_project_is_newest_first_and_paged(repos, name):
    kind = KINDS[name]
    repo = getattr(repos, kind.repo)
    project, other = uid("p"), uid("p")
    for created in (30, 10, 50, 20, 40):
        repo.add(kind.make(f"{project}-{created}", project, created))
    repo.add(kind.make(uid("k"), other, 60))
    keys, first_page = read_all(lambda limit, token: repo.list_by_project(project, limit, token), 2)
    assert keys == [f"{project}-{c}" for c in (50, 40, 30, 20, 10)]
    assert first_page == 2
    everything, token = repo.list_by_project(project, 10, None)
    assert [r.key for r in everything] == keys and token is None
    assert repo.list_by_project(uid("p"), 10, None) == ([], None)


@pytest.mark.parametrize("name", LISTED_BY_PROJECT)
def test_a_token_of_another_project_is_refused(repos, name):
    kind = KINDS[name]
    repo = getattr(repos, kind.repo)
    project = uid("p")
    for created in range(3):
        repo.add(kind.make(uid("k"), project, created))
    _, token = repo.list_by_project(project, 1, None)
    assert token
    with pytest.raises(InvalidInput) as caught:
        repo.list_by_project(uid("p"), 1, token)
    assert caught.value.field == "next_token"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


GARBAGE_TOKENS = ["not a token!", "%%%", b64("not json"), b64("[1, 2]"), b64('"a string"'), b64("{}"),
                  b64('{"project_id": "p"}'), b64('{"project_id": {"S": 7}}'),
                  b64('{"project_id": "p", "after": 5}'), b64('{"project_id": "p", "after": [1, {}]}')]
# Tokens that name the right project but hold a start key nobody issued.
FORGED_START_KEYS = [b64('{"project_id": {"S": "p"}, "after": 5}'),
                     b64('{"project_id": {"S": "p"}, "id": {"S": "x"}, "created_at": ["a"]}')]


@pytest.mark.parametrize("token", GARBAGE_TOKENS)
def test_a_garbage_token_is_invalid_input(repos, token):
    with pytest.raises(InvalidInput) as caught:
        repos.models.list_by_project("p", 10, token)
    assert caught.value.field == "next_token"


@pytest.mark.parametrize("token", FORGED_START_KEYS)
def test_a_forged_start_key_is_invalid_input(repos, token, request):
    with pytest.raises(InvalidInput) as caught:
        repos.models.list_by_project("p", 10, token)
    assert caught.value.field == "next_token"


def test_runs_list_by_model_is_highest_version_first_and_paged(repos):
    model, other, project = uid("m"), uid("m"), uid("p")
    for version in (2, 5, 1, 4, 3):
        repos.runs.add(a_run(f"{model}-v{version}", project, version, model_id=model, version=version))
    repos.runs.add(a_run(uid("r"), project, 9, model_id=other, version=9))
    keys, first_page = read_all(lambda limit, token: repos.runs.list_by_model(model, limit, token), 2)
    assert keys == [f"{model}-v{v}" for v in (5, 4, 3, 2, 1)]
    assert first_page == 2
    _, token = repos.runs.list_by_model(model, 2, None)
    with pytest.raises(InvalidInput) as caught:
        repos.runs.list_by_model(other, 2, token)
    assert caught.value.field == "next_token"


def test_count_active_in_project_counts_runs_not_yet_ended(repos):
    project, other = uid("p"), uid("p")
    statuses = ("queued", "submitted", "running", "cancelling", "succeeded", "failed", "cancelled", "running")
    for i, status in enumerate(statuses):
        repos.runs.add(a_run(uid("r"), project, i, model_id=uid("m"), status=status))
    repos.runs.add(a_run(uid("r"), other, 0, status="running"))
    assert repos.runs.count_active_in_project(project) == 5  # a cancelling run's job may still be stopping
    assert repos.runs.count_active_in_project(uid("p")) == 0
    run = next(r for r in [repos.runs.get(k) for k in _run_keys(repos, project)] if r.status == "queued")
    repos.runs.replace(run.but(status="succeeded"))  # a run that ends no longer counts
    assert repos.runs.count_active_in_project(project) == 4


def test_list_by_status_is_least_recently_updated_first_and_paged(repos):
    project = uid("p")
    for i, status in enumerate(("running", "queued", "running", "failed", "running")):
        repos.runs.add(a_run(f"{project}-{i}", project, 100 - 10 * i, model_id=uid("m"), status=status))
    # The table is shared by other tests: read every page, keep this project's runs.
    seen, token, pages = [], None, 0
    while True:
        items, token = repos.runs.list_by_status("running", 2, token)
        pages += 1
        seen += [r.run_id for r in items if r.project_id == project]
        if token is None:
            break
    assert seen == [f"{project}-{i}" for i in (4, 2, 0)] and pages >= 2
    assert [r.status for r in repos.runs.list_by_status("queued", 100, None)[0] if r.project_id == project] == [
        "queued"]
    _, token = repos.runs.list_by_status("running", 1, None)
    with pytest.raises(InvalidInput) as caught:
        repos.runs.list_by_status("queued", 1, token)
    assert caught.value.field == "next_token"


def _run_keys(repos, project):
    if repos.backend == "memory":
        return [k for k, r in repos.runs.rows.items() if r.project_id == project]
    from chalicelib.adapters.tables import TrainingRunTable

    return [i.run_id for i in TrainingRunTable.project_status_index.query(project)]


def test_count_by_ontology(repos):
    ontology = uid("o")
    for project in (uid("p"), uid("p"), uid("p")):
        repos.models.add(a_model(uid("m"), project, ontology_id=ontology))
    repos.models.add(a_model(uid("m"), uid("p"), ontology_id=uid("o")))
    assert repos.models.count_by_ontology(ontology) == 3
    assert repos.models.count_by_ontology(uid("o")) == 0


def test_recommendations_put_and_find(repos):
    project, ontology = uid("p"), uid("o")
    first = Recommendation(project_id=project, ontology_id=ontology, recommended_type="random_forest",
                           score=81.5, created_at=at(0), result={"all_scores": {"random_forest": 81.5}})
    repos.recommendations.put(first)
    assert repos.recommendations.find(project, ontology) == first
    later = first.but(recommended_type="regression", score=70.0, created_at=at(5))
    repos.recommendations.put(later)  # the last recommendation wins
    assert repos.recommendations.find(project, ontology) == later
    assert repos.recommendations.find(project, uid("o")) is None
    assert repos.recommendations.find(uid("p"), ontology) is None


# ---- records and schema (no backend needed) -----------------------------------------------------


@dataclass(frozen=True)
class OntologyWithExtra(Record):
    id: str
    project_id: str
    name: str
    content: str
    created_at: str
    updated_at: str
    description: str = ""
    nickname: str = ""  # the table has no such attribute
    lock_version: int | None = None


def test_the_adapter_refuses_a_record_type_its_table_does_not_match():
    from chalicelib.adapters import dynamo, tables

    dynamo.check_schema(tables.OntologyTable, Ontology)  # the real pair agrees
    with pytest.raises(dynamo.SchemaMismatch, match="nickname"):
        dynamo.check_schema(tables.OntologyTable, OntologyWithExtra)
    with pytest.raises(dynamo.SchemaMismatch, match="content"):
        dynamo.check_schema(tables.MlModelTable, Ontology)  # the table holds fields the record lacks
    with pytest.raises(dynamo.SchemaMismatch):
        class Mismatched(dynamo.Repository):
            table = tables.OntologyTable
            record_type = OntologyWithExtra
    with pytest.raises(dynamo.SchemaMismatch, match="nickname"):
        dynamo.to_item(tables.OntologyTable, OntologyWithExtra("o", "p", "n", "c", at(0), at(0), nickname="x"))


def test_a_misspelled_field_fails():
    model = a_model("m", "p")
    with pytest.raises(TypeError):
        model.but(nonexistent=1)
    with pytest.raises(TypeError):
        MlModel(**{**model.values(), "staus": "draft"})

