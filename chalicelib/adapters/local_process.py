"""The local launcher: runs the trainer (`python -m trainer`) as a subprocess, for `make run`.

It hands the trainer the same environment contract as the Kubernetes Job, and only
that (`trainer_contract.process_environment`: none of the API's own credentials,
table names or keys reach the trainer). It runs at most `max_concurrent` trainers at
once (the rest wait their turn). It keeps each trainer's exit code and reason, which
`inspect` answers: the reconciler (chalicelib/services/reconciler.py, a timer in the
local stack) settles a trainer that died without reporting from it, exactly as it does a
failed Kubernetes Job, so local and EKS runs end the same way and the model never stays
in `training`. The launcher itself posts nothing. `cancel` stops a trainer as a
Kubernetes Job deletion does (SIGTERM, SIGKILL after the grace period).

Each run's output goes to `<log_dir>/train-<run id>.log`: `make run` gives every stack
its own folder (`.local/runs/<API port>/`, or `LOCAL_RUN_LOG_DIR`). The failure reason a
caller sees never names that path; the launcher's log line does.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib import trainer_contract as contract
from chalicelib.adapters.launcher import JobState, TrainingJob

log = logging.getLogger("ml_models.local_launcher")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LOG_DIR = ROOT / ".local" / "runs"


class LocalProcessLauncher:
    def __init__(self, max_concurrent: int = 2, python: str = sys.executable, log_dir: str | None = None,
                 workdir: Path = ROOT, base_environment: Mapping[str, str] | None = None,
                 deadline_grace_seconds: float = 30.0) -> None:
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.python = python
        self.workdir = workdir
        # Where PATH, HOME, locale and the tuning knobs come from (default: this process).
        self.base_environment = os.environ if base_environment is None else base_environment
        self.log_dir = Path(log_dir) if log_dir else DEFAULT_LOG_DIR
        self.started: dict[str, threading.Thread] = {}
        # The live trainer process of each job, and the jobs asked to stop (`cancel`).
        self.processes: dict[str, subprocess.Popen] = {}
        self.cancelled: set[str] = set()
        # The jobs stopped for running past their own deadline (`TrainingJob.deadline_seconds`).
        self.past_deadline: set[str] = set()
        self.deadline_grace_seconds = deadline_grace_seconds
        # How each finished trainer exited (`inspect`, for the reconciler).
        self.exit_codes: dict[str, int] = {}
        self.exit_reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def submit(self, job: TrainingJob) -> str:
        name = job.name
        with self._lock:
            if name in self.started:  # idempotent: the same run is never started twice
                return name
            thread = threading.Thread(target=self._run, args=(job, name), name=name, daemon=True)
            self.started[name] = thread
        thread.start()
        return name

    def _run(self, job: TrainingJob, name: str) -> None:
        with self.slots:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            env = contract.process_environment(job.plain_environment(), job.secret_environment(),
                                               self.base_environment)
            log_path = self.log_dir / f"{name}.log"
            ids = {"model_id": job.model_id, "run_id": job.run_id}
            with open(log_path, "wb") as out:
                try:
                    code = self._call(name, job.entry_point, env, out, job.deadline_seconds)
                except OSError:
                    log.exception("trainer_not_started", extra={**ids, "python": self.python})
                    code, reason = -1, "the trainer could not be started"
                else:
                    reason = f"the trainer process exited with code {code} without reporting a result"
                    if name in self.past_deadline:
                        reason = (f"DeadlineExceeded: the trainer ran past its deadline of {job.deadline_seconds} s "
                                  "and was stopped")
            log.info("trainer_exited", extra={**ids, "code": code, "log": str(log_path)})
            with self._lock:
                self.exit_codes[name] = code
                self.exit_reasons[name] = reason
            # Nothing is posted: as on EKS, the reconciler reads this exit (inspect) and settles the run
            # (0: the trainer's complete report was accepted; otherwise failed with `reason`).

    def _call(self, name: str, module: str, env: Mapping[str, str], out: Any, deadline: int | None = None) -> int:
        """Run the trainer to its end (a job cancelled before its turn never starts). One still running
        `deadline` seconds after it started is stopped as Kubernetes stops a Job past its
        activeDeadlineSeconds: SIGTERM, then SIGKILL after the grace period."""
        with self._lock:
            if name in self.cancelled:
                return -1
            process = subprocess.Popen([self.python, "-m", module], cwd=self.workdir, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)
            self.processes[name] = process
        try:
            try:
                return process.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                with self._lock:
                    self.past_deadline.add(name)
                log.warning("trainer_past_deadline", extra={"job": name, "deadline_seconds": deadline})
                process.terminate()
                try:
                    return process.wait(timeout=self.deadline_grace_seconds)
                except subprocess.TimeoutExpired:
                    process.kill()
                    return process.wait()
        finally:
            with self._lock:
                self.processes.pop(name, None)

    def cancel(self, job_name: str, grace_seconds: int) -> None:
        """SIGTERM the job's trainer, SIGKILL it if it still runs after `grace_seconds` (never blocks).

        A job still waiting for a slot never starts; an unknown or finished job is left alone."""
        with self._lock:
            self.cancelled.add(job_name)
            process = self.processes.get(job_name)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        killer = threading.Timer(grace_seconds, lambda: process.poll() is None and process.kill())
        killer.daemon = True
        killer.start()
        log.info("trainer_cancelled", extra={"job": job_name, "pid": process.pid, "grace_seconds": grace_seconds})

    def inspect(self, job_name: str) -> JobState:
        """The job as this process knows it: one it never started (or started before a restart) is missing."""
        with self._lock:
            code = self.exit_codes.get(job_name)
            started, live = job_name in self.started, job_name in self.processes
        if code == 0:
            return JobState("succeeded", "Completed")
        if code is not None:
            return JobState("failed", "Error", self.exit_reasons.get(job_name)
                            or f"the trainer process exited with code {code}")
        if live:
            return JobState("running")
        return JobState("pending") if started else JobState("missing", "NotFound", f"no trainer {job_name} here")

    def wait_all(self, timeout: float | None = None) -> None:
        """Wait for every started trainer (tests and benchmarks)."""
        for thread in list(self.started.values()):
            thread.join(timeout)
