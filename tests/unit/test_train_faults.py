"""Must-show 2 of issue 12: AWS calls cut at each step of a train request (the 1st call, the 2nd, ...,
the last, and every call after it, as in an outage). Afterwards, once the outage is over, the model is
never in `training` without a live run for longer than the reconciler's period plus the start deadline.

Every collaborator that talks to AWS (the repositories, the start transaction, the S3 documents, STS,
the cluster) goes through one fault plan; the service and the reconciler are the real ones, on the
in-memory twins.
"""
from __future__ import annotations

import pytest
from test_training_service import MODEL, World

from chalicelib.adapters.launcher import job_name
from chalicelib.errors import UpstreamUnavailable
from chalicelib.services.reconciler import Reconciler

PERIOD, START_DEADLINE, SUBMISSION_GRACE = 60, 600, 300
LIVE = ("submitted", "running")


class FaultPlan:
    """Counts calls into AWS; from call `cut_from` on, each fails as an outage would."""

    def __init__(self) -> None:
        self.calls = 0
        self.cut_from: int | None = None

    def wrap(self, obj, *names: str) -> None:
        for name in names:
            real = getattr(obj, name)

            def guarded(*args, _real=real, _name=name, **kwargs):
                self.calls += 1
                if self.cut_from is not None and self.calls >= self.cut_from:
                    raise UpstreamUnavailable(f"cut at call {self.calls} ({_name})")
                return _real(*args, **kwargs)

            setattr(obj, name, guarded)

    def heal(self) -> None:
        self.cut_from = None


def world_with_faults() -> tuple[World, FaultPlan]:
    world, plan = World(), FaultPlan()
    plan.wrap(world.models, "get", "find", "replace", "delete")
    plan.wrap(world.runs, "get", "find", "add", "replace", "list_by_model", "count_active_in_project")
    plan.wrap(world.starts, "begin")
    plan.wrap(world.documents, "put_json", "get_json")
    plan.wrap(world.issuer, "issue")
    plan.wrap(world.launcher, "submit")
    return world, plan


def calls_in_a_clean_start() -> int:
    world, plan = world_with_faults()
    world.start()
    assert world.models.get(MODEL).status == "training"
    return plan.calls


def reconcile_after_the_outage(world: World) -> None:
    reconciler = Reconciler(world.runs, world.launcher, world.settlement, world.service.complete_from_manifest,
                            start_deadline_seconds=START_DEADLINE, submission_grace_seconds=SUBMISSION_GRACE,
                            clock=world.clock)
    world.clock.advance(PERIOD + START_DEADLINE)
    reconciler.reconcile()


STEPS = calls_in_a_clean_start()


def test_a_clean_start_makes_several_aws_calls():
    assert STEPS >= 6  # reads, the transaction, the spec, credentials, the job, the run's submitted mark


@pytest.mark.parametrize("cut_from", range(1, STEPS + 1))
def test_cut_at_each_step_never_strands_the_model(cut_from):
    world, plan = world_with_faults()
    before = world.models.get(MODEL)
    plan.cut_from = cut_from
    try:
        world.start()
    except UpstreamUnavailable:
        pass
    plan.heal()
    reconcile_after_the_outage(world)
    model = world.models.get(MODEL)
    if model.status != "training":
        assert model.training_task_id == "" or world.runs.find(model.training_task_id).status not in LIVE
        # Before the transaction nothing was written; after it, the run ended and says why.
        if model.status == before.status:
            return
        run = world.runs.get(model.training_task_id) if model.training_task_id else None
        assert run is None or run.failure_reason
        return
    run = world.runs.find(model.training_task_id)
    assert run is not None, "the model is training with no run record"
    # Still training only with a live run: its job exists on the cluster (the record may still say
    # `queued` when only the "submitted" mark was cut; the trainer's first report moves it on).
    assert run.status in ("queued", *LIVE), run
    assert world.launcher.inspect(job_name(run.run_id)).phase in ("pending", "running"), run
