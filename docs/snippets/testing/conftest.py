pytest_plugins = ["airflow_provider_phota.testing.pytest_plugin"]
