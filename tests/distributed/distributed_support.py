"""What the distributed test needs besides the Airflow components: a PostgreSQL database and a Redis key prefix of
its own, the emulator in a process of its own (the ``phota-emulator`` command, driven over its admin API), and
read-only queries of the metadata database."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import redis
import requests

from airflow_provider_phota import contract

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/0"
ADMIN = "/_emulator"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database (``phota_dist_<random>``); dropped afterwards, with any session still on it."""
    name = f"phota_dist_{secrets.token_hex(6)}"
    admin = psycopg2.connect(dbname="postgres", **POSTGRES)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def sqlalchemy_url(database: str) -> str:
    return f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"


@contextlib.contextmanager
def redis_key_prefix() -> Iterator[str]:
    """A key prefix of our own on the shared Redis (Celery's ``global_keyprefix``); its keys are deleted after."""
    prefix = f"phota-dist-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


class EmulatorProcess:
    """``phota-emulator`` in a process (and session) of its own, on a free port; its output goes to ``log``."""

    def __init__(self, log: Path, *, api_key: str, training_seconds: float, job_seconds: float) -> None:
        self.log = log
        command = [
            str(Path(sys.executable).parent / "phota-emulator"),
            *("--port", "0", "--api-key", api_key),
            *("--training-seconds", str(training_seconds), "--job-seconds", str(job_seconds)),
        ]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.base_url = self._wait_for_url(timeout=60)
        self.session = requests.Session()

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+)", self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise AssertionError(f"phota-emulator exited ({self.process.returncode}): {self.log.read_text()}")
            time.sleep(0.2)
        raise AssertionError(f"phota-emulator did not start in {timeout:.0f} s: {self.log.read_text()}")

    def stop(self) -> None:
        self.session.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}{ADMIN}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def inject_fault(self, path_glob: str, **spec: Any) -> None:
        self.admin("POST", "/faults", json={"path_glob": contract.API_PREFIX + path_glob, **spec})

    def requests(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "/requests")["requests"])

    def charges(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "/ledger")["charges"])

    def jobs(self) -> dict[str, dict[str, Any]]:
        return {job["job_id"]: job for job in self.admin("GET", "/jobs")["jobs"]}


class MetadataDatabase:
    """Read-only looks at the deployment's metadata database (autocommit: every query sees the newest rows)."""

    def __init__(self, database: str) -> None:
        self.connection = psycopg2.connect(dbname=database, **POSTGRES)
        self.connection.autocommit = True

    def close(self) -> None:
        self.connection.close()

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(query, args)
            return list(cursor.fetchall())

    def live_triggerers(self, threshold_seconds: float) -> dict[int, str]:
        """Triggerer job id -> hostname, for the triggerer jobs that are running and heartbeat recently."""
        rows = self.rows(
            "SELECT id, hostname FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
            "AND latest_heartbeat > now() - make_interval(secs => %s)",
            threshold_seconds,
        )
        return {int(job_id): str(hostname) for job_id, hostname in rows}

    def heartbeat_age(self, job_id: int) -> float:
        """Seconds since the job's latest heartbeat, by the database's clock."""
        ((age,),) = self.rows("SELECT extract(epoch FROM now() - latest_heartbeat) FROM job WHERE id = %s", job_id)
        return float(age)

    def deferred_waits(self, dag_id: str, run_id: str) -> list[tuple[str, int, int, int, int | None]]:
        """(task_id, map_index, try_number, trigger id, triggerer job id) of the run's deferred task instances."""
        return [
            (str(task_id), int(map_index), int(try_number), int(trigger_id), triggerer)
            for task_id, map_index, try_number, trigger_id, triggerer in self.rows(
                "SELECT ti.task_id, ti.map_index, ti.try_number, t.id, t.triggerer_id FROM task_instance ti "
                "JOIN trigger t ON t.id = ti.trigger_id "
                "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.state = 'deferred'",
                dag_id,
                run_id,
            )
        ]

    def trigger_owner(self, trigger_id: int) -> tuple[bool, int | None]:
        """(exists, triggerer job id) of a trigger row; a trigger that fired and was cleaned up no longer exists."""
        rows = self.rows("SELECT triggerer_id FROM trigger WHERE id = %s", trigger_id)
        return (True, rows[0][0]) if rows else (False, None)

    def task_instances(self, dag_id: str, run_id: str) -> dict[tuple[str, int], tuple[str, int, str | None]]:
        """(task_id, map_index) -> (state, try_number, hostname)."""
        rows = self.rows(
            "SELECT task_id, map_index, state, try_number, hostname FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s",
            dag_id,
            run_id,
        )
        return {(str(t), int(m)): (str(s), int(n), h) for t, m, s, n, h in rows}

    def tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int
    ) -> list[tuple[int, str, str | None, float | None]]:
        """(try_number, state, hostname, start time as epoch seconds) of every earlier try (task_instance_history)
        and the current one."""
        history = self.rows(
            "SELECT try_number, state, hostname, extract(epoch FROM start_date) FROM task_instance_history "
            "WHERE dag_id = %s AND run_id = %s AND task_id = %s AND map_index = %s",
            dag_id,
            run_id,
            task_id,
            map_index,
        )
        current = self.rows(
            "SELECT try_number, state, hostname, extract(epoch FROM start_date) FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s AND task_id = %s AND map_index = %s",
            dag_id,
            run_id,
            task_id,
            map_index,
        )
        return sorted((int(n), str(s), h, None if t is None else float(t)) for n, s, h, t in [*history, *current])

    def tables_containing(self, needle: str) -> dict[str, int]:
        """Table -> number of rows whose text form contains ``needle`` (as text, or hex-encoded as bytea shows it),
        over every table of the database (Airflow's and Celery's)."""
        tables = [
            str(name)
            for (name,) in self.rows(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        found = {}
        hex_needle = needle.encode().hex()
        for table in tables:
            (count,) = self.rows(
                f'SELECT count(*) FROM "{table}" AS t '  # noqa: S608  (table names from information_schema)
                "WHERE strpos(t::text, %s) > 0 OR strpos(t::text, %s) > 0",
                needle,
                hex_needle,
            )[0]
            if count:
                found[table] = int(count)
        return found
