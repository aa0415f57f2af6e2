"""Apache Airflow provider for the Phota image API."""

__version__ = "0.1.0"
