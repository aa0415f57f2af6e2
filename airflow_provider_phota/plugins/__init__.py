"""The provider's Airflow plugin: the "Phota outputs" gallery on the DAG-run and task-instance pages (Airflow 3.1+).

Airflow loads :class:`~airflow_provider_phota.plugins.gallery.PhotaGalleryPlugin` from the provider's metadata
(``get_provider_info()["plugins"]``). On an Airflow without FastAPI plugins or external views (2.x, 3.0) the plugin
loads with no views and logs why.
"""
