"""Benchmarks of airflow-provider-phota; run them all with ``bash scripts/bench`` (``python -m benchmarks``)."""
