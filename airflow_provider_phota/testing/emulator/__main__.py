"""``python -m airflow_provider_phota.testing.emulator``: the same as the ``phota-emulator`` command."""

import sys

from airflow_provider_phota.testing.emulator.cli import main

sys.exit(main())
