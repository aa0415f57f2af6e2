import pendulum

try:
    from airflow.sdk import DAG  # Airflow 3
except ImportError:
    from airflow import DAG  # Airflow 2

from airflow_provider_phota.operators.images import PhotaGenerateOperator

with DAG(
    dag_id="welcome_portrait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
):
    PhotaGenerateOperator(
        task_id="generate",
        prompt="A welcome card for the café ☕",
        poll_interval=0.2,
    )
