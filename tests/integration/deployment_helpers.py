"""A real Airflow deployment for one test: its components as processes, in a private AIRFLOW_HOME, on loopback.

``airflow db migrate`` makes a sqlite database, then the API server (the task workers reach the execution API
through it in Airflow 3), the scheduler (LocalExecutor), the triggerer and the DAG processor run as ``airflow ...``
processes, each in a process group of its own and with its output in ``$AIRFLOW_HOME/<component>.out``. A caller
may start other components instead (tests/distributed: two triggerers and two Celery workers on PostgreSQL), give
single components environment of their own, and SIGKILL one with everything under it (``kill``). Nothing
here imports Airflow: the deployment is driven over its REST API (the simple auth manager with every request
admin, so no tokens) and stopped by signals.

Stopping: each component gets SIGTERM and stops its own children (executor workers, the trigger runner, parsing
processes); whatever of the deployment is still alive after a grace period gets SIGKILL. Which processes belong
to the deployment: the components' process groups do not cover everything, because task supervisors move their
task processes into groups of their own (``os.setpgid``), and an environment marker cannot be read back from
processes that set their title (``setproctitle`` reuses the environment's memory). So the descendants of the
components are snapshotted while the deployment runs and once more before it is stopped, and the stop checks all
of them (plus the marker, plus the process groups) for survivors.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests

T = TypeVar("T")

MARKER_VARIABLE = "PHOTA_INTEGRATION_DEPLOYMENT"
LOG_SERVER_DEFAULT_PORTS = (8793, 8794)  # the scheduler's and triggerer's log servers: never put anything there
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def free_loopback_port(taken: set[int]) -> int:
    """A port free on 127.0.0.1 right now, not in ``taken`` and not one of Airflow's default log-server ports."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken and port not in LOG_SERVER_DEFAULT_PORTS:
            taken.add(port)
            return port


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"<cannot read {path}: {error}>"
    return "\n".join(text.splitlines()[-lines:])


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:100]}"
    except psutil.Error:
        return str(process.pid)


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class DeploymentError(AssertionError):
    """A deployment step failed or timed out; the message carries the components' recent output."""


class AirflowDeployment:
    """Airflow's components with a DAGs folder and extra environment (connections), and a REST client."""

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        extra_env: Mapping[str, str],
        *,
        parallelism: int = 2,
        components: Mapping[str, Sequence[str]] = COMPONENTS,
        component_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """``components``: name -> ``airflow`` arguments (default: one of each, LocalExecutor on sqlite; a caller
        may start more, e.g. two triggerers and Celery workers, and set the database and executor in
        ``extra_env``); ``component_env``: extra environment of single components (their hostnames, ports)."""
        self.home = home
        self.dags_folder = dags_folder
        self.marker = secrets.token_hex(16)
        ports: set[int] = set()
        self.api_port = free_loopback_port(ports)
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.env = self._environment(extra_env, parallelism, ports)
        self.component_args = dict(components)
        self.component_env = dict(component_env or {})
        self.components: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()  # components SIGKILLed on purpose by the test (``kill``)
        self.known: dict[int, psutil.Process] = {}
        self.session = requests.Session()
        self.started_at = time.monotonic()
        self.timeline: list[tuple[str, float]] = []

    def _environment(self, extra_env: Mapping[str, str], parallelism: int, ports: set[int]) -> dict[str, str]:
        """Airflow's settings from scratch: nothing Airflow-related of the pytest process (its AIRFLOW_HOME,
        UNIT_TEST_MODE, connections) leaks in; only the ordinary environment (locale, proxies, TMPDIR...) does."""
        venv_bin = str(Path(sys.executable).parent)
        if shutil.which("airflow", path=venv_bin) is None:
            raise DeploymentError(f"no `airflow` executable next to {sys.executable}")
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW", "_AIRFLOW", "PHOTA", "PYTEST_"))
        }
        return {
            **inherited,
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),  # components start `airflow ...` themselves
            "NO_COLOR": "1",
            MARKER_VARIABLE: self.marker,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),  # the default (32) forks 32 workers
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            # Workers reach the execution API through this; its default is http://localhost:8080.
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # one secret for every component
            # Log servers are not started (--skip-serve-logs); should one start, it must not collide either.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_loopback_port(ports)),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_loopback_port(ports)),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The task supervisor checks for its task process's exit at this interval (default 5 s).
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            **extra_env,
        }

    def mark(self, event: str) -> None:
        """Note when ``event`` happened, in seconds since the start (shown on failures and by the test)."""
        self.timeline.append((event, round(time.monotonic() - self.started_at, 1)))

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def start(self, migrate_timeout: float = 180.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        airflow = shutil.which("airflow", path=self.env["PATH"]) or "airflow"
        migrate_log = self.home / "db-migrate.out"
        with migrate_log.open("wb") as output:
            try:
                migrated = subprocess.run(
                    [airflow, "db", "migrate"],
                    cwd=self.home,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=migrate_timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DeploymentError(
                    f"`airflow db migrate` took over {migrate_timeout:.0f} s:\n{tail(migrate_log)}"
                ) from None
        if migrated.returncode != 0:
            raise DeploymentError(f"`airflow db migrate` failed ({migrated.returncode}):\n{tail(migrate_log)}")
        self.mark("database migrated")
        for name, arguments in self.component_args.items():
            with (self.home / f"{name}.out").open("wb") as output:
                self.components[name] = subprocess.Popen(
                    [airflow, *arguments],
                    cwd=self.home,
                    env={**self.env, **self.component_env.get(name, {})},
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a process group per component: one signal reaches its workers
                )
        self.track()

    def track(self) -> None:
        """Remember every live descendant of the components (the stop checks them all for survivors)."""
        for component in self.components.values():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(component.pid)
                for process in [root, *root.children(recursive=True)]:
                    self.known.setdefault(process.pid, process)

    def kill(self, name: str) -> list[int]:
        """SIGKILL component ``name`` and every process under it at once, as if its machine died: no process gets
        to clean up, report or hand anything over. Returns the process ids killed."""
        self.track()
        root = psutil.Process(self.components[name].pid)
        victims = [root]
        with contextlib.suppress(psutil.Error):
            victims += root.children(recursive=True)
        self.killed.add(name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(root.pid, signal.SIGKILL)
        for process in victims:  # task processes live in process groups of their own
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(victims, timeout=10)
        self.components[name].wait(timeout=10)
        self.mark(f"{name} SIGKILLed")
        return [process.pid for process in victims]

    def leftovers(self) -> list[psutil.Process]:
        """Processes of the deployment still alive: known descendants, members of the components' process groups,
        and anything with the deployment's marker in its (readable) environment."""
        groups = {component.pid for component in self.components.values()}
        found = {pid: process for pid, process in self.known.items() if alive(process)}
        for process in psutil.process_iter():
            if process.pid in found or process.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error, OSError):
                if not alive(process):
                    continue
                if os.getpgid(process.pid) in groups or process.environ().get(MARKER_VARIABLE) == self.marker:
                    found[process.pid] = process
        return list(found.values())

    def stop(self, grace_seconds: float = 20.0) -> list[str]:
        """SIGTERM every component (each stops its own children) and any task process outside their groups, wait
        up to ``grace_seconds``, then SIGKILL the components' process groups and every process of the deployment
        still alive. Returns descriptions of the processes that needed SIGKILL."""
        self.session.close()
        self.track()
        for component in self.components.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                component.send_signal(signal.SIGTERM)
        groups = {component.pid for component in self.components.values()}
        for process in self.leftovers():  # task processes, in groups of their own
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(process.pid) not in groups:
                    process.terminate()
        deadline = time.monotonic() + grace_seconds
        for name, component in self.components.items():
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.wait(timeout=max(0.1, deadline - time.monotonic()))
            if component.returncode is not None:
                self.mark(f"{name} stopped")
        survivors = self.leftovers()
        while survivors and time.monotonic() < deadline:
            time.sleep(0.2)
            survivors = self.leftovers()
        killed = [describe(process) for process in survivors]
        for component in self.components.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(component.pid, signal.SIGKILL)
        for process in survivors:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(survivors, timeout=10)
        for component in self.components.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.wait(timeout=10)
        return killed

    # --- diagnostics ----------------------------------------------------------------------------------------------

    def diagnostics(self, lines: int = 40) -> str:
        """The recent output of every component and the newest task logs, for failure messages."""
        parts = [f"timeline (s since start): {self.timeline}"]
        for name in self.component_args:
            parts += [f"--- {name} (last {lines} lines) ---", tail(self.home / f"{name}.out", lines)]
        logs = sorted((self.home / "logs").rglob("*.log*"), key=lambda path: path.stat().st_mtime)
        for path in logs[-4:]:
            parts += [f"--- {path.relative_to(self.home)} ---", tail(path, 30)]
        return "\n".join(parts)

    def fail(self, message: str) -> DeploymentError:
        return DeploymentError(f"{message}\n{self.diagnostics()}")

    def check_alive(self) -> None:
        for name, component in self.components.items():
            if component.poll() is not None and name not in self.killed:
                raise self.fail(f"airflow {name} exited with code {component.returncode}")

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
        """Call ``probe`` until it returns something other than None; fail with the logs after ``timeout``."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            self.check_alive()
            self.track()
            try:
                result = probe()
            except (requests.RequestException, ValueError) as error:  # not up yet, or a half-written answer
                result, last_error = None, error
            if result is not None:
                self.mark(what)
                return result
            if time.monotonic() > deadline:
                detail = f" (last error: {last_error})" if last_error else ""
                raise self.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
            time.sleep(interval)

    # --- REST API -------------------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=10, **kwargs)
        if response.status_code >= 400:
            raise requests.HTTPError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def log_in(self, username: str, password: str) -> str:
        """Make the REST client act as ``username`` (for a deployment with real users: the simple auth manager with
        ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False`` in ``extra_env``); returns the user's JWT."""
        response = requests.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=10
        )
        if response.status_code >= 400:
            raise requests.HTTPError(f"log in as {username}: {response.status_code} {response.text[:300]}")
        token = str(response.json()["access_token"])
        self.session.headers["Authorization"] = f"Bearer {token}"
        return token

    def healthy(self) -> dict[str, Any] | None:
        """The health answer once the scheduler, triggerer and DAG processor heartbeat (and the database is up)."""
        health = self.api("GET", "/monitor/health")
        statuses = {name: (health.get(name) or {}).get("status") for name in HEALTH_COMPONENTS}
        return health if all(status == "healthy" for status in statuses.values()) else None

    def execution_api_ready(self) -> bool | None:
        """The execution API answers. Its first request builds it (about 10 s of CPU), so the test makes that
        request instead of the first task: a worker's client would time out and retry meanwhile."""
        # Not through the session: the execution API would try to refresh the REST API's cookie as its own token.
        response = requests.get(f"{self.base_url}/execution/health", timeout=120)
        response.raise_for_status()
        return True if response.json().get("status") == "healthy" else None

    def import_errors(self) -> str:
        with contextlib.suppress(requests.RequestException, ValueError):
            errors = self.api("GET", "/importErrors").get("import_errors", [])
            return json.dumps(errors, indent=1)[:4000]
        return "<unavailable>"

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in answer["task_instances"]}

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def scheduler_handled_deferral(self, dag_id: str, task_id: str, run_id: str) -> bool:
        """Whether the scheduler has processed the executor's report of the workload that ended in the deferral.

        The task supervisor notices its task process's exit only at its next heartbeat check, so the workload
        that deferred can be reported a few seconds after the task instance became ``deferred``. A trigger that
        fires in that window resumes the task first, and the late report of the old workload ("success") then
        finds the task instance ``running`` and fails it as changed externally (Airflow 3.3.2). Real waits are
        minutes long; a test that ends a wait on purpose waits for this line first.
        """
        prefix = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id},"
        with contextlib.suppress(OSError):
            for line in (self.home / "scheduler.out").read_text(errors="replace").splitlines():
                if prefix in line and " state=deferred," in line:
                    return True
        return False

    def task_logs(self, dag_id: str, task_id: str) -> Iterator[Path]:
        """The task's log files under $AIRFLOW_HOME/logs: its worker parts and its trigger parts."""
        for path in sorted((self.home / "logs").rglob("*")):
            if path.is_file() and f"dag_id={dag_id}" in path.parts and f"task_id={task_id}" in path.parts:
                yield path
