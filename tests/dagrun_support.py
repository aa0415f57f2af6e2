"""Running the test DAGs under tests/dags with ``dag.test()`` and reading what Airflow recorded.

The same tests run on every supported Airflow (scripts/test-matrix); what differs between versions is here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from airflow_versions import AIRFLOW_2, AIRFLOW_VERSION
from packaging.version import Version

DAGS = Path(__file__).parent / "dags"


def dag_bag(folder: Path, bundle: str = "dags-folder") -> Any:
    """The DAGs of ``folder``, ready for ``dag.test()``: Airflow 3.1+ syncs a DAG's bundle itself when the test
    starts; 3.0 and 2.11 need the DAGs (3.0: and the bundle) in the database first, or Asset outlets and
    serialized runs fail."""
    if Version("3.2") <= AIRFLOW_VERSION:
        from airflow.dag_processing.dagbag import DagBag
    else:  # moved in 3.2
        from airflow.models.dagbag import DagBag

    bag = DagBag(str(folder))  # no Airflow examples: AIRFLOW__CORE__LOAD_EXAMPLES=False (tests/conftest.py)
    assert not bag.import_errors, bag.import_errors
    if AIRFLOW_2:
        bag.sync_to_db()
    elif Version("3.1") > AIRFLOW_VERSION:
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        DagBundlesManager().sync_bundles_to_db()
        bag.sync_to_db(bundle, None)
    return bag


@cache
def _dag_bag() -> Any:
    return dag_bag(DAGS)


def run_dag(dag_id: str, *, logical_date: datetime | None = None, **conf: Any) -> Any:
    """Run one DAG end to end in this process (tasks, deferrals and triggers inline); returns the DagRun.

    With ``logical_date`` the run id is fixed: running again with the same date clears the run's tasks and runs
    them again in the same DAG run, as clearing a finished task does.
    """
    dag = _dag_bag().get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id} in {DAGS}"
    return dag_test(dag, logical_date=logical_date, run_conf=conf)


def dag_test(dag: Any, *, logical_date: datetime | None = None, run_conf: dict[str, Any] | None = None) -> Any:
    """``dag.test()`` in the words of this Airflow (2.x names the date ``execution_date``)."""
    if logical_date is None:
        return dag.test(run_conf=run_conf)
    if AIRFLOW_2:
        return dag.test(execution_date=logical_date, run_conf=run_conf)
    return dag.test(logical_date=logical_date, run_after=logical_date, run_conf=run_conf)


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id or task_id[map_index]: state}`` of a finished run."""
    states = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state.value if hasattr(ti.state, "value") else ti.state)
    return states


def try_numbers(dag_run: Any) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}


def xcom_rows(dag_run: Any) -> list[tuple[str, int, str, Any]]:
    """Every XCom row of the run as ``(task_id, map_index, key, value)``, values decoded from the database."""
    from airflow.utils.session import create_session

    if AIRFLOW_2:
        from airflow.models.xcom import BaseXCom as XComModel
    else:
        from airflow.models.xcom import XComModel

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
        return [(row.task_id, row.map_index, row.key, _decode(row.value)) for row in rows]


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):  # Airflow 2 stores JSON bytes
        value = value.decode()
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:  # a plain string stored as it is
        return value


def return_value(dag_run: Any, task_id: str, map_index: int = -1) -> Any:
    for row_task, row_map, key, value in xcom_rows(dag_run):
        if row_task == task_id and row_map == map_index and key == "return_value":
            return value
    raise AssertionError(f"no return_value XCom for {task_id}[{map_index}] in {xcom_rows(dag_run)}")


def asset_event_extras(dag_run: Any, uri: str) -> list[dict[str, Any]]:
    """The ``extra`` of each asset event the run emitted for the asset ``uri`` (Airflow 2: dataset events)."""
    from airflow.utils.session import create_session

    if AIRFLOW_2:
        from airflow.models.dataset import DatasetEvent as AssetEvent
        from airflow.models.dataset import DatasetModel as AssetModel

        asset_id = AssetEvent.dataset_id
    else:
        from airflow.models.asset import AssetEvent, AssetModel

        asset_id = AssetEvent.asset_id
    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetModel.id == asset_id)
            .filter(AssetModel.uri == uri, AssetEvent.source_run_id == dag_run.run_id)
        )
        return [dict(row.extra) for row in rows]


@contextmanager
def openlineage_to_file(path: Path, monkeypatch: Any) -> Iterator[Path]:
    """A fresh OpenLineage listener for the block, its file transport appending one event a line to ``path``.

    The listener managers are made (which loads Airflow's plugins) before OpenLineage is configured, so the
    provider's plugin, which registers its listeners only if OpenLineage is enabled when it is imported, leaves
    none behind to emit in later tests. One that an earlier import did register keeps the client it made first,
    writing where that configuration said: it is set aside for the block and put back after.
    """
    from airflow.listeners.listener import get_listener_manager as core_listener_manager
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener

    try:
        from airflow.sdk.listener import get_listener_manager  # Airflow 3: the task SDK's listeners
    except ImportError:  # Airflow 2.11
        get_listener_manager = core_listener_manager

    core_listener_manager()
    manager = get_listener_manager()
    transport = {"type": "file", "log_file_path": str(path), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "phota-tests")
    earlier = [plugin for plugin in manager.pm.get_plugins() if isinstance(plugin, OpenLineageListener)]
    for plugin in earlier:
        manager.pm.unregister(plugin)
    listener = OpenLineageListener()
    manager.add_listener(listener)
    try:
        yield path
    finally:
        manager.pm.unregister(listener)
        for plugin in earlier:
            manager.add_listener(plugin)
