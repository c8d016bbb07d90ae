"""The local launcher: same environment contract as the Job, bounded concurrency, and a
fail report when a trainer process dies without reporting."""
from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib import trainer_contract
from chalicelib.adapters.launcher import TrainingJob
from chalicelib.adapters.local_process import LocalProcessLauncher
from chalicelib.trainer_contract import credential_secrets, trainer_environment


@pytest.fixture
def receiver():
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (stdlib name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"path": self.path, "auth": self.headers["Authorization"],
                          "run": self.headers["X-Training-Run-Id"], "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()


def fake_trainer(tmp_path, body: str):
    """A directory holding a `trainer` package whose entry point runs `body`."""
    package = tmp_path / "trainer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(body)
    return tmp_path


def job(base_url: str, run_id: str = "run-1") -> TrainingJob:
    return TrainingJob(run_id=run_id, model_id="model-1", project_id="p", model_type="regression",
                       callback_token="secret-token",
                       environment={"TRAINER_CALLBACK_URL": base_url, "TRAINER_RUN_ID": run_id})


def test_a_trainer_that_dies_silently_is_a_failed_job_for_the_reconciler(tmp_path, receiver):
    """As on EKS: nothing is posted; `inspect` says the job failed and why, and the reconciler ends the run."""
    base, calls = receiver
    workdir = fake_trainer(tmp_path, "import sys\nsys.exit(3)\n")
    launcher = LocalProcessLauncher(python=sys.executable, workdir=workdir, log_dir=str(tmp_path / "logs"))
    assert launcher.submit(job(base)) == "train-run-1"
    launcher.wait_all(30)
    assert calls == []
    state = launcher.inspect("train-run-1")
    assert state.phase == "failed" and "exited with code 3" in state.message
    # The caller sees the reason; the log file's path is for the operator (the launcher's log line).
    assert str(tmp_path) not in state.message and "/" not in state.message
    assert (tmp_path / "logs" / "train-run-1.log").exists()


def test_a_trainer_that_exits_0_has_reported_so_nothing_is_posted(tmp_path, receiver):
    """trainer/main.py exits 0 only once its complete report was accepted: a fail report after
    it would only be refused (409) and show up in the log of every successful run."""
    base, calls = receiver
    workdir = fake_trainer(tmp_path, "print('training completed')\n")
    launcher = LocalProcessLauncher(python=sys.executable, workdir=workdir, log_dir=str(tmp_path / "logs"))
    launcher.submit(job(base))
    launcher.wait_all(30)
    assert calls == []
    assert "training completed" in (tmp_path / "logs" / "train-run-1.log").read_text()


def test_a_trainer_that_cannot_start_is_reported_without_the_os_message(tmp_path, receiver):
    base, calls = receiver
    missing = tmp_path / "no" / "such" / "python"
    launcher = LocalProcessLauncher(python=str(missing), workdir=tmp_path, log_dir=str(tmp_path / "logs"))
    launcher.submit(job(base))
    launcher.wait_all(30)
    state = launcher.inspect("train-run-1")
    assert calls == [] and (state.phase, state.message) == ("failed", "the trainer could not be started")


def test_each_stack_gets_its_own_run_log_folder_and_local_run_log_dir_moves_it(monkeypatch, tmp_path):
    from chalicelib.config import Settings
    from chalicelib.wiring import build_launcher
    from scripts import local_stack

    monkeypatch.delenv("LOCAL_RUN_LOG_DIR", raising=False)
    first = local_stack.app_environment(None, 8080, {})["LOCAL_RUN_LOG_DIR"]
    second = local_stack.app_environment(None, 9000, {})["LOCAL_RUN_LOG_DIR"]
    assert first != second and first.endswith("/.local/runs/8080")
    monkeypatch.setenv("LOCAL_RUN_LOG_DIR", str(tmp_path))
    env = local_stack.app_environment(None, 8080, {})
    assert env["LOCAL_RUN_LOG_DIR"] == str(tmp_path)
    assert build_launcher(Settings.from_environ(env)).log_dir == tmp_path


def test_the_trainer_gets_the_environment_contract_and_the_token(tmp_path, receiver):
    base, _ = receiver
    out = tmp_path / "env.json"
    workdir = fake_trainer(tmp_path, "import json, os\n"
                           f"json.dump(dict(os.environ), open({str(out)!r}, 'w'))\n")
    launcher = LocalProcessLauncher(python=sys.executable, workdir=workdir, log_dir=str(tmp_path / "logs"))
    launcher.submit(job(base))
    launcher.wait_all(30)
    env = json.loads(out.read_text())
    assert env["TRAINER_CALLBACK_TOKEN"] == "secret-token" and env["TRAINER_RUN_ID"] == "run-1"
    assert env["TRAINER_CALLBACK_URL"] == base


def test_the_trainer_gets_only_the_contract_not_the_apis_environment(tmp_path, receiver, monkeypatch):
    base, _ = receiver
    # What the API process holds and a trainer must never see.
    monkeypatch.setenv("AUTH_SIGNING_KEY_FOR_TEST", "-----BEGIN PRIVATE KEY----- api only")
    monkeypatch.setenv("MODELS_TABLE", "ml-models-local")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "api-own-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "api-own-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "api-own-session")
    monkeypatch.setenv("TRAINER_PROGRESS_INTERVAL", "0")  # an operator knob: inherited
    out = tmp_path / "env.json"
    workdir = fake_trainer(tmp_path, "import json, os\n"
                           f"json.dump(dict(os.environ), open({str(out)!r}, 'w'))\n")
    launcher = LocalProcessLauncher(python=sys.executable, workdir=workdir, log_dir=str(tmp_path / "logs"))
    run = TrainingJob(
        run_id="run-1", model_id="model-1", project_id="p", model_type="regression", callback_token="secret-token",
        environment=trainer_environment(
            model_id="model-1", run_id="run-1", callback_url=base, spec_uri="s3://artifacts/runs/spec.json",
            artifact_bucket="artifacts", artifact_prefix="models", region="eu-west-1",
            endpoint_url="http://127.0.0.1:5000", credentials_expiration="2030-01-01T00:00:00Z"),
        secrets=credential_secrets(access_key_id="ASIARUN", secret_access_key="run-secret", session_token="run-st"),
    )

    launcher.submit(run)
    launcher.wait_all(30)

    env = json.loads(out.read_text())
    assert "AUTH_SIGNING_KEY_FOR_TEST" not in env and "MODELS_TABLE" not in env
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]) == (
        "ASIARUN", "run-secret", "run-st")  # the run's credentials, not the API's
    assert env["TRAINER_CALLBACK_TOKEN"] == "secret-token"
    assert env["TRAINER_CREDENTIALS_EXPIRATION"] == "2030-01-01T00:00:00Z"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000" and env["AWS_REGION"] == "eu-west-1"
    assert env["TRAINER_PROGRESS_INTERVAL"] == "0" and env["PATH"] == os.environ["PATH"]
    allowed = trainer_contract.NAMES | set(trainer_contract.PROCESS_BASICS)
    # Python itself may add a few variables of its own (e.g. LC_CTYPE coercion on POSIX).
    assert set(env) - allowed <= {"LC_CTYPE"}, sorted(set(env) - allowed)


def test_a_name_outside_the_contract_is_refused_when_the_job_is_made():
    with pytest.raises(ValueError, match="MODELS_TABLE"):
        TrainingJob(run_id="r", model_id="m", project_id="p", model_type="regression", callback_token="t",
                    environment={"MODELS_TABLE": "x"})
    with pytest.raises(ValueError, match="TRAINER_RUN_ID"):
        TrainingJob(run_id="r", model_id="m", project_id="p", model_type="regression", callback_token="t",
                    secrets={"TRAINER_RUN_ID": "r"})


def test_submit_is_idempotent_and_concurrency_is_bounded(tmp_path, receiver):
    base, _ = receiver
    marker = tmp_path / "running"
    marker.mkdir()
    peak = tmp_path / "peak"
    # Each fake trainer records how many run at once, then lingers briefly.
    workdir = fake_trainer(tmp_path, "import os, time, uuid\n"
                           f"d = {str(marker)!r}; me = os.path.join(d, uuid.uuid4().hex); open(me, 'w').close()\n"
                           f"open({str(peak)!r}, 'a').write(str(len(os.listdir(d))) + '\\n')\n"
                           "time.sleep(0.5); os.remove(me)\n")
    launcher = LocalProcessLauncher(max_concurrent=2, python=sys.executable, workdir=workdir,
                                    log_dir=str(tmp_path / "logs"))
    for i in range(5):
        launcher.submit(job(base, f"run-{i}"))
    launcher.submit(job(base, "run-0"))  # the same run again: not started twice
    launcher.wait_all(60)
    counts = [int(x) for x in peak.read_text().split()]
    assert len(counts) == 5 and max(counts) <= 2


def wait_for(path, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_cancel_sends_sigterm_and_the_launcher_reports_nothing(tmp_path, receiver):
    base, calls = receiver
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    # A trainer that records the SIGTERM it gets (as trainer/main.py handles it) and exits non-zero.
    workdir = fake_trainer(tmp_path, "import signal, sys, time\n"
                           f"def stop(*_): open({str(stopped)!r}, 'w').close(); sys.exit(1)\n"
                           "signal.signal(signal.SIGTERM, stop)\n"
                           f"open({str(started)!r}, 'w').close()\n"
                           "time.sleep(60)\n")
    launcher = LocalProcessLauncher(python=sys.executable, workdir=workdir, log_dir=str(tmp_path / "logs"))
    name = launcher.submit(job(base))
    wait_for(started)

    launcher.cancel(name, 10)
    launcher.wait_all(20)

    assert stopped.exists() and not launcher.started[name].is_alive()
    assert calls == []  # the API settled the run when it asked for the cancel


def test_a_trainer_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, receiver):
    base, calls = receiver
    started = tmp_path / "started"
    workdir = fake_trainer(tmp_path, "import signal, time\n"
                           "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                           f"open({str(started)!r}, 'w').close()\n"
                           "time.sleep(60)\n")
    launcher = LocalProcessLauncher(python=sys.executable, workdir=workdir, log_dir=str(tmp_path / "logs"))
    name = launcher.submit(job(base))
    wait_for(started)

    launcher.cancel(name, 1)
    launcher.wait_all(20)

    assert not launcher.started[name].is_alive() and calls == []


def test_a_job_cancelled_before_its_turn_never_starts_and_an_unknown_one_is_ignored(tmp_path, receiver):
    base, calls = receiver
    ran = tmp_path / "ran"
    workdir = fake_trainer(tmp_path, f"open({str(ran)!r}, 'a').write('x')\n")
    launcher = LocalProcessLauncher(max_concurrent=1, python=sys.executable, workdir=workdir,
                                    log_dir=str(tmp_path / "logs"))
    launcher.cancel("train-nobody", 5)
    launcher.cancel("train-run-1", 5)
    launcher.submit(job(base))
    launcher.wait_all(20)
    assert not ran.exists() and calls == []


def test_a_trainer_past_its_own_deadline_is_stopped_and_fails_naming_it(tmp_path, receiver):
    """A tuned run's job carries its own deadline (budget plus margin): past it, the trainer is stopped as
    Kubernetes stops a Job past activeDeadlineSeconds (SIGTERM, then SIGKILL) and the job fails saying so."""
    base, _ = receiver
    workdir = fake_trainer(tmp_path, "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                     "time.sleep(60)\n")
    launcher = LocalProcessLauncher(python=sys.executable, workdir=workdir, log_dir=str(tmp_path / "logs"),
                                    deadline_grace_seconds=0.5)
    bounded = TrainingJob(run_id="run-1", model_id="model-1", project_id="p", model_type="regression",
                          callback_token="secret-token", environment={"TRAINER_CALLBACK_URL": base},
                          deadline_seconds=1)
    launcher.submit(bounded)
    launcher.wait_all(30)
    state = launcher.inspect("train-run-1")
    assert state.phase == "failed" and "DeadlineExceeded" in state.message and "1 s" in state.message
    assert launcher.exit_codes["train-run-1"] != 0


def test_a_job_deadline_must_be_positive():
    with pytest.raises(ValueError, match="deadline_seconds"):
        TrainingJob(run_id="r", model_id="m", project_id="p", model_type="regression", callback_token="t",
                    deadline_seconds=0)
