"""Gauge tables in wide CSV form: a date column and one column per station.

This is how many small gauge networks are shared (the RFmerge example data, CR2 exports,
spreadsheet downloads)::

    date,P5101005,P5111002,...
    1983-01-01,0.0,0.0,...
    1983-01-02,,3.5,...          <- empty = missing

plus a station table with an id column and coordinates (``Code, lon, lat`` in RFmerge;
``id``/``station``/``code``, ``lat``/``latitude``, ``lon``/``longitude``, optional
``elevation``/``elev``/``alt``).  Stations without an elevation get the elevation sampled
from a DEM when one is given.

The result follows the stations contract (``docs/contracts.md``): a long daily table
``station, date, value, n_valid`` (``n_valid`` = 1 for daily records) and a station table
``station, lat, lon, elevation`` (roles are assigned by the stations stage).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

logger = logging.getLogger(__name__)

__all__ = [
    "read_wide_csv",
    "read_wide_values",
    "read_station_table",
    "read_dem",
    "wide_to_long",
    "sample_elevation",
]

_ID = ("station", "id", "code", "station_id", "stationid", "gauge", "site", "name")
_LAT = ("lat", "latitude", "y")
_LON = ("lon", "longitude", "long", "x")
_ELEV = ("elevation", "elev", "alt", "altitude", "height", "z", "dem")
_DATE = ("date", "time", "day", "fecha", "datetime")
MISSING = ("", "NA", "NaN", "nan", "NULL", "-9999", "-999", "-99.9")


def _find(columns: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def sample_elevation(dem: xr.DataArray, lon, lat) -> np.ndarray:
    """Elevation of the DEM cell holding each point (NaN outside the DEM)."""
    lon = np.asarray(lon, dtype="f8")
    lat = np.asarray(lat, dtype="f8")
    glon = dem["lon"].values
    glat = dem["lat"].values
    out = np.full(lon.shape, np.nan)
    if glon.size < 2 or glat.size < 2:
        raise ValueError(f"DEM needs at least 2x2 cells, got {dict(dem.sizes)}")
    dx = abs(glon[1] - glon[0])
    dy = abs(glat[1] - glat[0])
    col = np.rint((lon - glon[0]) / (glon[1] - glon[0])).astype("i8")
    row = np.rint((lat - glat[0]) / (glat[1] - glat[0])).astype("i8")
    ok = (col >= 0) & (col < glon.size) & (row >= 0) & (row < glat.size)
    ok &= np.abs(lon - glon[np.clip(col, 0, glon.size - 1)]) <= dx / 2 + 1e-9
    ok &= np.abs(lat - glat[np.clip(row, 0, glat.size - 1)]) <= dy / 2 + 1e-9
    values = np.asarray(dem.values, dtype="f8")
    out[ok] = values[row[ok], col[ok]]
    return out


def read_station_table(
    path: str | Path, *, dem: xr.DataArray | None = None, ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a station table → ``station, lat, lon, elevation`` (+ ``name`` when present).

    Parameters
    ----------
    path : str or Path
        CSV with an id column and coordinates in degrees (EPSG:4326).
    dem : xarray.DataArray, optional
        ``(lat, lon)`` elevation (m) used where the table has no elevation.
    ids : sequence of str, optional
        Station ids expected (the data columns); a missing one raises.
    """
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = list(table.columns)
    sid, lat, lon = _find(cols, _ID), _find(cols, _LAT), _find(cols, _LON)
    missing = [w for w, c in (("id", sid), ("latitude", lat), ("longitude", lon)) if c is None]
    if missing:
        raise ValueError(
            f"{path}: station table lacks {', '.join(missing)} column(s); found columns {cols}"
        )
    out = pd.DataFrame(
        {
            "station": table[sid].str.strip(),
            "lat": pd.to_numeric(table[lat], errors="coerce"),
            "lon": pd.to_numeric(table[lon], errors="coerce"),
        }
    )
    bad = out["lat"].isna() | out["lon"].isna() | (out["lat"].abs() > 90) | (out["lon"].abs() > 360)
    if bad.any():
        raise ValueError(
            f"{path}: {int(bad.sum())} station(s) with invalid coordinates, first "
            f"{out.loc[bad, 'station'].iloc[0]!r}"
        )
    if out["station"].duplicated().any():
        dup = out.loc[out["station"].duplicated(), "station"].iloc[0]
        raise ValueError(f"{path}: station id {dup!r} appears more than once")
    elev = _find(cols, _ELEV)
    out["elevation"] = pd.to_numeric(table[elev], errors="coerce") if elev else np.nan
    need = out["elevation"].isna()
    if need.any() and dem is not None:
        out.loc[need, "elevation"] = sample_elevation(
            dem, out.loc[need, "lon"].to_numpy(), out.loc[need, "lat"].to_numpy()
        )
        logger.info("%s: elevation of %d station(s) sampled from the DEM", path, int(need.sum()))
    if out["elevation"].isna().any():
        logger.warning(
            "%s: %d station(s) without elevation", path, int(out["elevation"].isna().sum())
        )
    name = _find(cols, ("name", "nombre", "station_name"))
    if name and name != sid:
        out["name"] = table[name]
    if ids is not None:
        absent = sorted(set(ids) - set(out["station"]))
        if absent:
            raise ValueError(
                f"{path}: {len(absent)} station(s) of the data file are not in the station "
                f"table, e.g. {absent[:3]}"
            )
        out = out[out["station"].isin(set(ids))].reset_index(drop=True)
    return out


def wide_to_long(wide: pd.DataFrame) -> pd.DataFrame:
    """A date-indexed table with one column per station → ``station, date, value, n_valid``.

    Missing values are dropped (a missing day has no row).
    """
    long = wide.rename_axis(index="date", columns="station").stack(future_stack=True)
    long = long.rename("value").reset_index()
    long = long[long["value"].notna()].copy()
    long["station"] = long["station"].astype(str)
    long["date"] = pd.to_datetime(long["date"]).astype("datetime64[ns]")
    long["value"] = long["value"].astype("float64")
    long["n_valid"] = np.int32(1)
    long = long[["station", "date", "value", "n_valid"]]
    return long.sort_values(["station", "date"]).reset_index(drop=True)


def read_wide_values(
    path: str | Path,
    *,
    start=None,
    end=None,
    missing_values: Sequence[str] = MISSING,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Read a wide gauge CSV as a table indexed by day, one float column per station id.

    Parameters
    ----------
    path : str or Path
        CSV with a date column (``date``/``time``/``day``/``fecha``; else the first column) and
        one numeric column per station id.
    start, end : date-like, optional
        Keep these days (inclusive) only.
    missing_values : sequence of str
        Cell texts read as missing (NaN).
    date_format : str, optional
        ``strftime`` format of the dates (default: ISO, inferred).
    """
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    date_col = _find(list(raw.columns), _DATE) or raw.columns[0]
    dates = pd.to_datetime(raw[date_col].str.strip(), format=date_format, errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna())[0])
        raise ValueError(
            f"{path}: column {date_col!r} row {i + 2} is not a date: {raw[date_col].iloc[i]!r}"
        )
    if dates.duplicated().any():
        raise ValueError(f"{path}: date {dates[dates.duplicated()].iloc[0]:%Y-%m-%d} repeats")
    ids = [c for c in raw.columns if c != date_col]
    if not ids:
        raise ValueError(f"{path}: no station columns besides {date_col!r}")
    miss = set(missing_values)
    values = {}
    for c in ids:
        text = raw[c].str.strip()
        num = pd.to_numeric(text.where(~text.isin(miss)), errors="coerce")
        bad = num.isna() & ~text.isin(miss)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: column {c!r} row {i + 2} is not a number: {text.iloc[i]!r}")
        if c.strip() in values:
            raise ValueError(f"{path}: station column {c.strip()!r} appears more than once")
        values[c.strip()] = num.to_numpy(dtype="f8")
    index = pd.DatetimeIndex(dates.to_numpy(), name="date").normalize().as_unit("ns")
    wide = pd.DataFrame(values, index=index).sort_index()
    wide.columns.name = "station"
    if start is not None:
        wide = wide[wide.index >= pd.Timestamp(start)]
    if end is not None:
        wide = wide[wide.index <= pd.Timestamp(end)]
    logger.info(
        "%s: %d stations x %d days, %d missing values",
        path,
        wide.shape[1],
        wide.shape[0],
        int(wide.isna().to_numpy().sum()),
    )
    return wide


def read_wide_csv(
    path: str | Path,
    table: str | Path,
    *,
    dem: xr.DataArray | None = None,
    start=None,
    end=None,
    missing_values: Sequence[str] = MISSING,
    date_format: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a wide gauge CSV and its station table into the stations contract.

    Parameters
    ----------
    path : str or Path
        The wide CSV (see :func:`read_wide_values`).
    table : str or Path
        Station table (see :func:`read_station_table`).
    dem : xarray.DataArray, optional
        Elevation used for stations whose table gives none.
    start, end, missing_values, date_format
        As in :func:`read_wide_values`.

    Returns
    -------
    daily : pandas.DataFrame
        ``station`` (str), ``date`` (datetime64[ns]), ``value`` (float), ``n_valid`` (1).
    stations : pandas.DataFrame
        ``station, lat, lon, elevation`` for the stations of the data file.
    """
    wide = read_wide_values(
        path, start=start, end=end, missing_values=missing_values, date_format=date_format
    )
    stations = read_station_table(table, dem=dem, ids=list(wide.columns))
    return wide_to_long(wide), stations


def read_dem(path: str | Path) -> xr.DataArray:
    """A DEM as ``(lat, lon)``: GeoTIFF, or NetCDF with one 2-D variable (``elevation`` first)."""
    from ..io import read_geotiff, read_netcdf

    path = Path(path)
    if path.name.lower().endswith((".tif", ".tiff", ".tif.gz", ".tiff.gz")):
        return read_geotiff(path)
    ds = read_netcdf(path)
    names = [v for v in ds.data_vars if ds[v].ndim == 2]
    if not names:
        raise ValueError(f"{path}: no 2-D variable to use as elevation; have {list(ds.data_vars)}")
    name = "elevation" if "elevation" in names else names[0]
    return ds[name].load()
