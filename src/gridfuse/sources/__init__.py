"""Readers of gridded sources, one module per format family, and the format registry.

* :mod:`~gridfuse.sources.registry`: every fact about a format (reader, variables with
  units and ranges, steps and files per day, native resolution, cost per file, coverage by
  product version); :func:`get_format`.
* :mod:`~gridfuse.sources.ingest`: :func:`ingest`, the one entry point of the ingest jobs
  (read a source-year, count its losses, enforce the limits), and :class:`ReadRequest`.
* :mod:`~gridfuse.sources.qc`: units and plausibility checks, :class:`SourceQC`.

:data:`READERS` keeps the compact precipitation API of the tests and benchmarks::

    reader(folders, days, window, bbox, *, variable="", threads=1, **options) -> xr.DataArray

``folders`` are searched recursively for the format's files, ``days`` are the product days
wanted, ``window`` the :class:`gridfuse.daily.DayWindow`, ``bbox`` ``(west, south, east,
north)`` the region to keep (every source cell overlapping it).  The result is ``precip``
(mm/day, float32) with dims ``(time, lat, lon)`` on the source's native grid, latitude
descending, ``time`` = the product days, and ``attrs["days_missing"]``.
"""

from __future__ import annotations

from functools import partial

from .ingest import ReadRequest, absent_table, ingest, read_daily
from .qc import QCLimits, QualityError, SourceQC
from .registry import FORMATS, SourceFormat, Variable, Version, formats, get_format, register

__all__ = [
    "READERS",
    "FORMATS",
    "ReadRequest",
    "SourceFormat",
    "Variable",
    "Version",
    "QCLimits",
    "QualityError",
    "SourceQC",
    "absent_table",
    "formats",
    "get_format",
    "get_reader",
    "ingest",
    "register",
]

# format name (the `format` key of a source in the config) -> precipitation reader
READERS = {name: partial(read_daily, name) for name in formats("precip")}


def get_reader(fmt: str):
    """The precipitation reader of a format name; the error lists the known formats."""
    get_format(fmt)
    if fmt not in READERS:
        raise KeyError(f"format {fmt!r} is not a precipitation format; known: {sorted(READERS)}")
    return READERS[fmt]
