"""``[core] hostname_callable`` of the distributed test's Airflow components: the name in
``PHOTA_COMPONENT_HOSTNAME`` (``worker-a``, ``triggerer-b``, ...), so that each component on this one machine shows
up as a host of its own in the metadata database (task instances' ``hostname``, triggerer jobs' ``hostname``)."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("PHOTA_COMPONENT_HOSTNAME") or socket.getfqdn()
