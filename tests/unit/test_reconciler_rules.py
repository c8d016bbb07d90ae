"""The reconciler's rules on the in-memory twins: which job states end a run, how, and the sweep's bounds."""
from __future__ import annotations

import pytest
from fakes.collaborators import RecordingNotifier, SteppingClock
from fakes.launcher import FakeLauncher
from fakes.records import a_model, a_run
from fakes.repositories import MemoryModelRepository, MemoryTrainingRunRepository

from chalicelib.adapters.eks import job_state
from chalicelib.adapters.launcher import JobState, job_name
from chalicelib.errors import UpstreamUnavailable
from chalicelib.services.reconciler import Reconciler
from chalicelib.services.run_settlement import RunSettlement

START = "2026-01-01T00:00:00.000000Z"


class Graph:
    def __init__(self, manifest_ok: bool = False, **options) -> None:
        self.clock = SteppingClock(START)
        self.models, self.runs = MemoryModelRepository(), MemoryTrainingRunRepository()
        self.launcher = FakeLauncher()
        self.settlement = RunSettlement(self.models, self.runs, notifier=RecordingNotifier(), clock=self.clock)
        self.completed: list[str] = []

        def complete(run) -> bool:
            if manifest_ok:
                self.completed.append(run.run_id)
                self.settlement.finish(run.model_id, run.run_id, "succeeded", artifact="s3://a/m/v2/")
            return manifest_ok

        self.reconciler = Reconciler(self.runs, self.launcher, self.settlement, complete, clock=self.clock,
                                     **options)

    def training(self, key: str, status: str = "submitted", with_job: bool = True):
        self.models.add(a_model(f"model-{key}", "p", status="training", training_task_id=f"run-{key}"))
        run = a_run(f"run-{key}", "p", model_id=f"model-{key}", status=status, created_at=START, updated_at=START,
                    deadline_at="2026-01-01T06:10:00.000000Z", job_name=job_name(f"run-{key}") if with_job else "")
        self.runs.add(run)
        return run

    def ended(self, key: str):
        return self.models.get(f"model-{key}"), self.runs.get(f"run-{key}")


@pytest.mark.parametrize("state", [JobState("running"), JobState("pending"),
                                   JobState("pending", "ImagePullBackOff", "back-off")])
def test_a_live_or_young_job_is_left_alone(state):
    graph = Graph()
    graph.training("a")
    graph.launcher.states[job_name("run-a")] = state
    graph.clock.advance(599)
    assert graph.reconciler.reconcile()["unchanged"] == 1
    assert graph.ended("a")[0].status == "training"


def test_a_stuck_pod_fails_its_run_once_past_the_start_deadline():
    graph = Graph(start_deadline_seconds=120)
    graph.training("a")
    graph.launcher.states[job_name("run-a")] = JobState("pending", "Unschedulable", "0/3 nodes are available")
    graph.clock.advance(121)
    graph.reconciler.reconcile()
    model, run = graph.ended("a")
    assert (model.status, run.status) == ("failed", "failed")
    assert "Unschedulable: 0/3 nodes are available" in run.failure_reason


def test_a_succeeded_job_completes_from_its_manifest_or_fails_without_one():
    graph = Graph(manifest_ok=True)
    graph.training("a")
    graph.launcher.states[job_name("run-a")] = JobState("succeeded", "Complete")
    graph.reconciler.reconcile()
    assert graph.ended("a")[0].status == "trained" and graph.completed == ["run-a"]

    graph = Graph(manifest_ok=False)
    graph.training("b")
    graph.launcher.states[job_name("run-b")] = JobState("succeeded", "Complete")
    graph.reconciler.reconcile()
    assert "the trainer exited without reporting" in graph.ended("b")[1].failure_reason


def test_a_run_without_a_job_is_given_the_submission_grace():
    graph = Graph(submission_grace_seconds=300)
    graph.training("a", status="queued", with_job=False)
    graph.clock.advance(299)
    graph.reconciler.reconcile()
    assert graph.ended("a")[1].status == "queued"
    graph.clock.advance(2)
    graph.reconciler.reconcile()
    assert "the job was never submitted" in graph.ended("a")[1].failure_reason


def test_a_run_past_its_deadline_fails_even_if_nothing_reads_the_model():
    graph = Graph()
    graph.training("a")
    graph.launcher.states[job_name("run-a")] = JobState("running")
    graph.clock.advance(6 * 3600 + 601)
    graph.reconciler.reconcile()
    assert "deadline" in graph.ended("a")[1].failure_reason


def test_a_run_that_is_no_longer_the_models_is_skipped_not_failed_twice():
    graph = Graph()
    graph.training("a")
    graph.models.modify("model-a", lambda m: m.but(training_task_id="run-newer"))
    graph.launcher.states[job_name("run-a")] = JobState("failed", "DeadlineExceeded")
    assert graph.reconciler.reconcile()["skipped"] == 1
    assert graph.ended("a")[0].status == "training"


def test_a_cancelling_run_is_stopped_again_and_ends_cancelled():
    graph = Graph(cancel_grace_seconds=7)
    graph.training("a", status="cancelling")
    graph.reconciler.reconcile()
    assert graph.ended("a")[1].status == "cancelled"
    assert graph.launcher.cancels == [(job_name("run-a"), 7)]


def test_the_sweep_is_bounded_and_survives_an_unreachable_launcher():
    graph = Graph(max_runs=3)
    for key in "abcde":
        graph.training(key)
    graph.launcher.inspect = lambda name: (_ for _ in ()).throw(UpstreamUnavailable("cluster down"))
    summary = graph.reconciler.reconcile()
    assert summary == {"runs_seen": 3, "error": 3, "exhausted": False}
    assert all(graph.ended(key)[0].status == "training" for key in "abcde")


def test_the_sweep_stops_starting_runs_after_its_time_budget():
    ticks = iter(range(100))
    graph = Graph(budget_seconds=2.5)
    graph.reconciler.monotonic = lambda: next(ticks)
    for key in "abcde":
        graph.training(key)
    summary = graph.reconciler.reconcile()
    assert summary["runs_seen"] == 2 and summary["exhausted"] is False


def pod(**status):
    return {"metadata": {"name": "p"}, "status": status}


@pytest.mark.parametrize(("job", "pods", "expected"), [
    ({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}, [],
     JobState("failed", "DeadlineExceeded")),
    ({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}},
     [pod(containerStatuses=[{"name": "trainer", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}])],
     JobState("failed", "OOMKilled", "container trainer was killed for exceeding its memory limit (exit code 137)")),
    ({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}, [], JobState("succeeded", "Complete")),
    ({"status": {"conditions": [{"type": "Failed", "status": "False"}]}}, [pod(phase="Running")],
     JobState("running")),
    ({"status": {}}, [pod(containerStatuses=[{"name": "t", "state": {"waiting": {"reason": "ContainerCreating"}}}])],
     JobState("pending")),
    ({"status": {}}, [pod(containerStatuses=[{"name": "t", "state": {"waiting": {"reason": "ErrImagePull",
                                                                                  "message": "denied"}}}])],
     JobState("pending", "ErrImagePull", "denied")),
    ({}, [pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m"}])],
     JobState("pending", "Unschedulable", "m")),
])
def test_job_state_reads_conditions_and_container_states(job, pods, expected):
    assert job_state(job, pods) == expected
