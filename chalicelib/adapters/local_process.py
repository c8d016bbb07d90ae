"""The local launcher: runs the trainer (`python -m trainer`) as a subprocess, for `make run`.

It hands the trainer the same environment contract as the Kubernetes Job, and only
that (`trainer_contract.process_environment`: none of the API's own credentials,
table names or keys reach the trainer). It runs at most `max_concurrent` trainers at
once (the rest wait their turn). If a trainer process dies without reporting (killed,
crashed before it could call back), the launcher reports the failure through the same
fail callback, with the run's token, so the model never stays in `training`.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from chalicelib import trainer_contract as contract
from chalicelib.adapters.launcher import TrainingJob, job_name

log = logging.getLogger("ml_models.local_launcher")
ROOT = Path(__file__).resolve().parents[2]


class LocalProcessLauncher:
    def __init__(self, max_concurrent: int = 2, python: str = sys.executable, log_dir: str | None = None,
                 workdir: Path = ROOT, base_environment: Mapping[str, str] | None = None) -> None:
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.python = python
        self.workdir = workdir
        # Where PATH, HOME, locale and the tuning knobs come from (default: this process).
        self.base_environment = os.environ if base_environment is None else base_environment
        self.log_dir = Path(log_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "ml-models-runs"))
        self.started: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def submit(self, job: TrainingJob) -> str:
        name = job_name(job.run_id)
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
            with open(log_path, "wb") as out:
                try:
                    code = subprocess.call([self.python, "-m", "trainer"], cwd=self.workdir, env=env,
                                           stdout=out, stderr=subprocess.STDOUT)
                except OSError as exc:
                    code, reason = -1, f"the trainer could not be started: {exc}"
                else:
                    reason = f"the trainer process exited with code {code} without reporting a result (log: {log_path})"
            log.info(json.dumps({"event": "trainer_exited", "run_id": job.run_id, "model_id": job.model_id,
                                 "code": code}))
            # Whatever the exit code: if the trainer reported, this answers 200 (same
            # outcome) or 409 (already ended) and changes nothing; if not, the run fails.
            self._report_failure(job, reason)

    def _report_failure(self, job: TrainingJob, reason: str) -> None:
        """Tell the API the run failed; a 409 means the trainer had already reported."""
        base = job.environment.get(contract.CALLBACK_URL, "").rstrip("/")
        request = urllib.request.Request(
            f"{base}/api/ml-models/{job.model_id}/training/fail",
            data=json.dumps({"reason": reason}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {job.callback_token}",
                     "X-Training-Run-Id": job.run_id},
            method="POST",
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                log.error(json.dumps({"event": "fail_report_refused", "run_id": job.run_id, "status": exc.code}))
        except OSError as exc:
            log.error(json.dumps({"event": "fail_report_unreachable", "run_id": job.run_id, "error": str(exc)}))

    def wait_all(self, timeout: float | None = None) -> None:
        """Wait for every started trainer (tests and benchmarks)."""
        for thread in list(self.started.values()):
            thread.join(timeout)
