"""Station observations: readers and writers of the real layouts, QC, roles, daily ingest.

- :mod:`~gridfuse.stations.cma`: CMA V3.0 daily TXT (read/write) and CMADaaS hourly CSV.
- :mod:`~gridfuse.stations.cnemc`: CNEMC ``china_sites_YYYYMMDD.csv`` and station lists.
- :mod:`~gridfuse.stations.generic`: long ``station, time, value`` CSV + station table.
- :mod:`~gridfuse.stations.qc`: checks and the :class:`QCLog` of every decision.
- :mod:`~gridfuse.stations.roles`: train / evaluation stations.
- :mod:`~gridfuse.stations.pipeline`: :func:`ingest` and the reader registry.
"""

from gridfuse.stations.pipeline import (
    READERS,
    Observations,
    ReadRequest,
    hourly_to_daily,
    ingest,
    product_day,
    register_reader,
)
from gridfuse.stations.qc import QCLog
from gridfuse.stations.roles import assign_roles

__all__ = [
    "READERS",
    "Observations",
    "QCLog",
    "ReadRequest",
    "assign_roles",
    "hourly_to_daily",
    "ingest",
    "product_day",
    "register_reader",
]
