"""Readers of gridded sources, one module per family, and the format registry.

Every precipitation reader in :data:`READERS` has the same signature::

    reader(folders, days, window, bbox, *, variable="", threads=1) -> xr.DataArray

``folders`` are searched recursively for the format's files, ``days`` are the product days
wanted, ``window`` the :class:`gridfuse.daily.DayWindow`, ``bbox`` ``(west, south, east,
north)`` the region to keep (every source cell overlapping it).  The result is ``precip``
(mm/day, float32) with dims ``(time, lat, lon)`` on the source's native grid, latitude
descending, ``time`` = the product days, and ``attrs["days_missing"]``.
"""

from __future__ import annotations

from .era5 import read_era5_precip

__all__ = ["READERS", "get_reader"]

# format name (the `format` key of a source in the config) -> reader
READERS = {
    "era5": read_era5_precip,
}


def get_reader(fmt: str):
    """The reader of a format name; the error lists the known formats."""
    try:
        return READERS[fmt]
    except KeyError:
        raise KeyError(f"unknown source format {fmt!r}; known: {sorted(READERS)}") from None
