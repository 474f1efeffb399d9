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

from .cmorph import read_cmorph
from .era5 import read_era5_precip
from .gldas import read_gldas
from .gridded_daily import read_geotiff_daily, read_netcdf_daily
from .gsmap import read_gsmap_daily, read_gsmap_hourly, read_gsmap_netcdf
from .imerg import read_imerg_daily, read_imerg_hhr

__all__ = ["READERS", "get_reader", "read_precip_daily"]

# format name (the `format` key of a source in the config) -> reader
READERS = {
    "era5": read_era5_precip,
    "imerg_hhr": read_imerg_hhr,
    "imerg_daily": read_imerg_daily,
    "gsmap_hourly": read_gsmap_hourly,
    "gsmap_daily": read_gsmap_daily,
    "gsmap_netcdf": read_gsmap_netcdf,
    "gldas": read_gldas,
    "cmorph": read_cmorph,
    "geotiff_daily": read_geotiff_daily,
    "netcdf_daily": read_netcdf_daily,
}


def get_reader(fmt: str):
    """The reader of a format name; the error lists the known formats."""
    try:
        return READERS[fmt]
    except KeyError:
        raise KeyError(f"unknown source format {fmt!r}; known: {sorted(READERS)}") from None


def read_precip_daily(
    fmt: str,
    folders,
    days,
    utc_start_hour: int,
    grid,
    margin: float = 0.5,
    *,
    variable: str = "",
    threads: int = 1,
    options: dict | None = None,
):
    """Daily precipitation (mm/day) of one source for product ``days``.

    Parameters
    ----------
    fmt : str
        Format name (a key of :data:`READERS`).
    folders : list of paths
        Folders searched (recursively) for the source's files.
    days : array-like of dates
        Product days.
    utc_start_hour : int
        Day window (see :mod:`gridfuse.daily`).
    grid : gridfuse.grid.Grid
        Product grid; the source is cropped to the cells overlapping it plus ``margin`` deg.
    variable : str
        Variable name override.
    threads : int
        Parallel readers.
    options : dict, optional
        Format-specific keyword arguments of the reader (``geotiff_daily``: ``first_date``).

    Returns
    -------
    xarray.DataArray
        ``precip`` ``(time, lat, lon)`` float32 on the source's native grid, latitude
        descending, ``attrs["days_missing"]``.
    """
    from ..daily import DayWindow

    reader = get_reader(fmt)
    bbox = grid.padded(margin).bounds if margin > 0 else grid.bounds
    da = reader(
        [str(f) for f in folders],
        days,
        DayWindow(int(utc_start_hour)),
        bbox,
        variable=variable,
        threads=max(1, int(threads)),
        **(options or {}),
    )
    return da.astype("float32").rename("precip")
