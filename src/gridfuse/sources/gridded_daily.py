"""Readers for products that are already daily grids: GeoTIFF or NetCDF.

Two layouts are common for daily precipitation products distributed as grids (CHIRPS,
PERSIANN-CDR, regional merged products):

* ``geotiff_daily``: one GeoTIFF per day with the date in the file name
  (``chirps-v2.0.1983.01.01.tif``, ``precip_19830101.tif``, ``P_1983-01-01.tif.gz``), or one
  multi-band GeoTIFF whose bands are consecutive days.  Band dates come from the band
  descriptions or tags when they hold ISO dates, otherwise from ``first_date`` (the date of
  band 1), as for the RFmerge example rasters which carry no dates.
* ``netcdf_daily``: NetCDF files with a ``(time, lat, lon)`` variable (one file for the whole
  record, one per year, or one per day).

Both follow the registry signature of :mod:`gridfuse.sources`
(``reader(folders, days, window, bbox, *, variable="", threads=1)``) and return daily
``precip`` in mm/day on the product's native grid, latitude descending, cropped to a bounding
box, ``time`` = the product days asked for: the ``daily/{source}/{year}.nc`` contract in
``docs/contracts.md``.  Values are daily totals as distributed; a product's own day
definition is kept (no re-windowing is possible on daily data).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..grid import Grid

logger = logging.getLogger(__name__)

__all__ = [
    "read_geotiff_daily",
    "read_netcdf_daily",
    "as_days",
    "crop_to_bbox",
    "date_from_name",
    "to_mm_per_day",
]

_TIF_SUFFIXES = (".tif", ".tiff", ".tif.gz", ".tiff.gz")
_NC_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5")
# YYYY?MM?DD with one optional separator (. _ -) used consistently, not inside a longer number
_DATE_RE = re.compile(
    r"(?<!\d)(1[89]\d\d|2[01]\d\d)([._-]?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])(?!\d)"
)
# factors that turn a recognized unit into mm/day
_UNITS = {
    "mm/day": 1.0,
    "mm day-1": 1.0,
    "mm d-1": 1.0,
    "mm/d": 1.0,
    "mm": 1.0,
    "kg m-2 day-1": 1.0,
    "kg m-2": 1.0,
    "mm/h": 24.0,
    "mm/hr": 24.0,
    "mm h-1": 24.0,
    "mm hr-1": 24.0,
    "kg m-2 s-1": 86400.0,
    "mm s-1": 86400.0,
    "mm/s": 86400.0,
    "m": 1000.0,
    "m/day": 1000.0,
    "m day-1": 1000.0,
}
_PRECIP_NAMES = ("precip", "precipitation", "pr", "prcp", "tp", "rain", "p", "pre", "ppt")


# ---------------------------------------------------------------------- helpers
def date_from_name(name: str) -> pd.Timestamp | None:
    """The date written in a file name as ``YYYYMMDD`` or ``YYYY.MM.DD`` (``-``/``_`` too).

    Returns None when the name holds no such date.  The last match wins, so a version
    number in front (``chirps-v2.0.``) does not confuse it.
    """
    found = None
    for m in _DATE_RE.finditer(name):
        try:
            found = pd.Timestamp(int(m.group(1)), int(m.group(3)), int(m.group(4)))
        except ValueError:  # e.g. 2019-02-30
            continue
    return found


def to_mm_per_day(da: xr.DataArray, units: str | None, *, source: str = "") -> xr.DataArray:
    """Convert a daily precipitation array to mm/day from its ``units`` attribute.

    Missing units are taken as mm/day (with a log message); unknown units raise.
    """
    if not units:
        logger.info("%s: no units attribute, taking values as mm/day", source or da.name)
        return da
    key = " ".join(str(units).strip().lower().replace("**", "").split())
    key = key.replace("^", "").replace("mm/24h", "mm/day")
    if key not in _UNITS:
        raise ValueError(
            f"{source or da.name}: units {units!r} not understood for daily precipitation; "
            f"expected one of {sorted(_UNITS)}"
        )
    factor = _UNITS[key]
    return da * factor if factor != 1.0 else da


def crop_to_bbox(da: xr.DataArray, bbox: Sequence[float] | Grid | None) -> xr.DataArray:
    """Cells of a ``(..., lat, lon)`` array whose extent overlaps ``bbox``; latitude descending.

    ``bbox`` is ``(west, south, east, north)`` or a :class:`~gridfuse.grid.Grid`.  Longitudes
    in 0..360 are shifted to -180..180 when the box has negative longitudes.
    """
    if da["lat"].size > 1 and da["lat"].values[0] < da["lat"].values[-1]:
        da = da.isel(lat=slice(None, None, -1))
    if bbox is None:
        return da
    west, south, east, north = bbox.bounds if isinstance(bbox, Grid) else map(float, bbox)
    lon = da["lon"].values
    if west < 0 and lon.max() > 180:
        da = da.assign_coords(lon=((da["lon"] + 180) % 360) - 180).sortby("lon")
        lon = da["lon"].values
    dlon = float(np.abs(np.diff(lon)).min()) if lon.size > 1 else 0.0
    lat = da["lat"].values
    dlat = float(np.abs(np.diff(lat)).min()) if lat.size > 1 else 0.0
    keep_lon = (lon + dlon / 2 > west + 1e-9) & (lon - dlon / 2 < east - 1e-9)
    keep_lat = (lat + dlat / 2 > south + 1e-9) & (lat - dlat / 2 < north - 1e-9)
    if not keep_lon.any() or not keep_lat.any():
        raise ValueError(
            f"{da.name}: grid lon {lon.min():.3f}..{lon.max():.3f}, lat {lat.min():.3f}.."
            f"{lat.max():.3f} does not overlap the box west={west} south={south} "
            f"east={east} north={north}"
        )
    out = da.isel(lon=np.flatnonzero(keep_lon), lat=np.flatnonzero(keep_lat))
    if lon.size > 1 and (lon.min() - dlon / 2 > west + 1e-6 or lon.max() + dlon / 2 < east - 1e-6):
        logger.warning("%s covers only part of the box in longitude", da.name)
    if lat.size > 1 and (
        lat.min() - dlat / 2 > south + 1e-6 or lat.max() + dlat / 2 < north - 1e-6
    ):
        logger.warning("%s covers only part of the box in latitude", da.name)
    return out


def as_days(days) -> pd.DatetimeIndex:
    """Product days from a DatetimeIndex-like, or all days of a year given as an int."""
    if isinstance(days, (int, np.integer)):
        return pd.date_range(f"{int(days)}-01-01", f"{int(days)}-12-31", freq="D")
    days = pd.DatetimeIndex(days).normalize()
    if days.size == 0:
        raise ValueError("no product days requested")
    return days


def _finish(da: xr.DataArray, days: pd.DatetimeIndex, bbox, source: str) -> xr.DataArray:
    """Select the product days, crop, clean and package as ``precip``."""
    da = da.assign_coords(time=pd.DatetimeIndex(da["time"].values).normalize())
    if not da.indexes["time"].is_unique:
        dup = da.indexes["time"][da.indexes["time"].duplicated()]
        raise ValueError(f"{source}: duplicate dates in the input, e.g. {dup[0]:%Y-%m-%d}")
    da = da.isel(time=np.flatnonzero(da.indexes["time"].isin(days))).sortby("time")
    present = pd.DatetimeIndex(da["time"].values)
    if present.size == 0:
        raise ValueError(
            f"{source}: none of the days {days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d} in the input"
        )
    da = crop_to_bbox(da, bbox)
    n_missing = int(days.size - present.size)
    if n_missing:
        logger.warning(
            "%s: %d of %d product day(s) absent from the input (first %s), set to NaN",
            source,
            n_missing,
            days.size,
            f"{days.difference(present)[0]:%Y-%m-%d}",
        )
        da = da.reindex(time=days)
    values = da.values.astype("float32", copy=True)
    neg = np.isfinite(values) & (values < 0)
    if neg.any():
        logger.info("%s: %d negative values set to NaN", source, int(neg.sum()))
        values[neg] = np.nan
    grid = Grid.from_coords(da["lat"].values, da["lon"].values)
    coords = grid.coords()
    coords["time"] = xr.DataArray(days.as_unit("ns"), dims="time")
    out = xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords=coords,
        name="precip",
        attrs={"units": "mm day-1", "days_missing": n_missing, "source_format": source},
    )
    logger.info(
        "%s: %d days on %s, NaN fraction %.3f",
        source,
        days.size,
        grid.describe(),
        float(np.isnan(values).mean()),
    )
    return out


def _window_note(window, source: str) -> None:
    h = getattr(window, "utc_start_hour", 0)
    if h:
        logger.warning(
            "%s: daily totals are kept as distributed; they cannot be re-windowed to product "
            "days starting at %02d UTC",
            source,
            h,
        )


def _files(folders, suffixes: Sequence[str]) -> list[Path]:
    """Files ending in ``suffixes`` given as files or folders searched recursively."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    files: list[Path] = []
    for folder in map(Path, folders):
        if folder.is_file():
            files.append(folder)
        elif folder.is_dir():
            files += sorted(
                p
                for p in folder.rglob("*")
                if p.is_file() and p.name.lower().endswith(tuple(suffixes))
            )
        else:
            raise FileNotFoundError(f"{folder}: no such file or folder")
    if not files:
        raise FileNotFoundError(
            f"{list(map(str, folders))}: no files ending in {', '.join(suffixes)}"
        )
    return files


# ---------------------------------------------------------------------- GeoTIFF
def _band_dates(src, first_date) -> pd.DatetimeIndex:
    """Dates of the bands of a multi-band GeoTIFF (descriptions/tags, else first_date)."""
    found = []
    for b in range(1, src.count + 1):
        text = " ".join([src.descriptions[b - 1] or ""] + [str(v) for v in src.tags(b).values()])
        found.append(date_from_name(text))
    if all(d is not None for d in found):
        return pd.DatetimeIndex(found)
    if first_date is None:
        raise ValueError(
            f"{src.name}: {src.count} bands without dates in their descriptions or tags; "
            "set the source's first_date (the date of band 1)"
        )
    return pd.date_range(pd.Timestamp(first_date), periods=src.count, freq="D")


def _read_tif(path: Path, first_date, bbox) -> xr.DataArray:
    import rasterio
    from rasterio.windows import Window

    uri = f"/vsigzip/{path}" if path.suffix == ".gz" else str(path)
    try:
        src = rasterio.open(uri)
    except rasterio.errors.RasterioIOError as err:
        raise OSError(f"{path}: cannot be read as GeoTIFF ({err})") from err
    with src:
        t = src.transform
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise ValueError(f"{path}: not a north-up, unrotated raster (transform {t})")
        if src.crs is not None and not src.crs.is_geographic:
            raise ValueError(f"{path}: CRS {src.crs} is not geographic lon/lat (EPSG:4326)")
        window = Window(0, 0, src.width, src.height)
        if bbox is not None:
            b = bbox.bounds if isinstance(bbox, Grid) else tuple(map(float, bbox))
            # one cell of slack, the exact crop is done on coordinates afterwards
            c0 = max(0, int(np.floor((b[0] - t.c) / t.a)) - 1)
            c1 = min(src.width, int(np.ceil((b[2] - t.c) / t.a)) + 1)
            r0 = max(0, int(np.floor((b[3] - t.f) / t.e)) - 1)
            r1 = min(src.height, int(np.ceil((b[1] - t.f) / t.e)) + 1)
            if c1 <= c0 or r1 <= r0:
                raise ValueError(f"{path}: raster bounds {src.bounds} do not overlap the box {b}")
            window = Window(c0, r0, c1 - c0, r1 - r0)
        data = src.read(window=window).astype("float32")
        if src.nodata is not None:
            nodata = np.float32(src.nodata)
            data[np.isclose(data, nodata, rtol=1e-6) | (data == nodata)] = np.nan
        data[np.abs(data) > 1e30] = np.nan
        x0 = t.c + window.col_off * t.a
        y0 = t.f + window.row_off * t.e
        dates = (
            pd.DatetimeIndex([date_from_name(path.name)])
            if src.count == 1 and date_from_name(path.name) is not None
            else _band_dates(src, first_date)
        )
    # cell centres from the transform, in float64, rounded to far below the cell size
    lon = np.round(x0 + (np.arange(data.shape[2]) + 0.5) * t.a, 9)
    lat = np.round(y0 + (np.arange(data.shape[1]) + 0.5) * t.e, 9)
    return xr.DataArray(
        data, dims=("time", "lat", "lon"), coords={"time": dates, "lat": lat, "lon": lon}
    )


def read_geotiff_daily(
    folders,
    days,
    window=None,
    bbox: Sequence[float] | Grid | None = None,
    *,
    variable: str = "",
    threads: int = 1,
    first_date=None,
) -> xr.DataArray:
    """Registry reader ``geotiff_daily``: daily precipitation (mm/day) from GeoTIFF files.

    Parameters
    ----------
    folders : path or sequence of paths
        Multi-band GeoTIFFs, single daily GeoTIFFs, or folders searched recursively for
        ``.tif``/``.tiff`` (optionally ``.gz``).  Single-band files take their date from the
        file name; multi-band files from band descriptions/tags, else ``first_date``.
    days : DatetimeIndex-like or int
        Product days wanted (an int: every day of that year).  Days absent from the files
        are NaN and counted in ``attrs["days_missing"]``.
    window : gridfuse.daily.DayWindow, optional
        The product's day window; daily totals cannot be re-windowed (a warning is logged
        for a window not starting at 00 UTC).
    bbox : (west, south, east, north) or Grid, optional
        Keep the source cells overlapping this box.
    variable, threads
        Unused (registry signature); GeoTIFFs hold one variable.
    first_date : date-like, optional
        Date of band 1 of multi-band files that carry no dates.

    Returns
    -------
    xarray.DataArray
        ``precip(time, lat, lon)`` float32 mm/day, latitude descending, ``time`` = ``days``.
    """
    days = as_days(days)
    _window_note(window, "geotiff_daily")
    return _read_dated_files(
        "geotiff_daily",
        folders,
        _TIF_SUFFIXES,
        days,
        bbox,
        lambda f: _read_tif(f, first_date, bbox),
        "is dated within",
    )


def _read_dated_files(label, folders, suffixes, days, bbox, read_one, what, keep=None):
    """Read the files of ``folders`` that may hold ``days``, check one grid, concat, finish.

    A file whose name carries a date outside ``days`` is skipped unopened (when there are
    several); ``keep`` may drop a file after reading it.
    """
    files = _files(folders, suffixes)
    parts = []
    for f in files:
        d = date_from_name(f.name)
        if d is not None and len(files) > 1 and not days[0] <= d <= days[-1]:
            continue  # a daily file of another day: skip without opening it
        da = read_one(f)
        if keep is None or keep(da):
            parts.append(da)
    if not parts:
        raise ValueError(
            f"{label}: no file in {folders} {what} {days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d}"
        )
    _check_same_grid(parts, folders)
    da = xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]
    logger.info("%s: read %d file(s) from %s", label, len(parts), folders)
    return _finish(da, days, bbox, label)


def _check_same_grid(parts: list[xr.DataArray], path) -> None:
    ref = parts[0]
    for p in parts[1:]:
        if p.sizes["lat"] != ref.sizes["lat"] or p.sizes["lon"] != ref.sizes["lon"]:
            raise ValueError(
                f"{path}: files differ in grid, {dict(ref.sizes)} vs {dict(p.sizes)} "
                f"(first date {pd.Timestamp(p['time'].values[0]):%Y-%m-%d})"
            )
        if not (
            np.allclose(p["lat"], ref["lat"], atol=1e-6)
            and np.allclose(p["lon"], ref["lon"], atol=1e-6)
        ):
            raise ValueError(f"{path}: files differ in cell coordinates")


# ---------------------------------------------------------------------- NetCDF
def _pick(ds: xr.Dataset, names: Sequence[str], what: str, path) -> str:
    lower = {str(k).lower(): str(k) for k in list(ds.variables)}
    for n in names:
        if n in lower:
            return lower[n]
    raise ValueError(f"{path}: no {what} variable; looked for {list(names)}, found {list(lower)}")


def _open_nc(path: Path, variable: str, bbox) -> xr.DataArray:
    try:
        ds = xr.open_dataset(path)
    except Exception as err:
        raise OSError(f"{path}: cannot be read as NetCDF ({err})") from err
    with ds:
        lat = _pick(ds, ("lat", "latitude", "y"), "latitude", path)
        lon = _pick(ds, ("lon", "longitude", "x"), "longitude", path)
        time = _pick(ds, ("time", "valid_time", "date", "t"), "time", path)
        if variable:
            if variable not in ds.data_vars:
                raise ValueError(
                    f"{path}: variable {variable!r} not found; have {list(ds.data_vars)}"
                )
            name = variable
        else:
            cands = [v for v in ds.data_vars if ds[v].ndim == 3]
            by_name = [v for v in cands if str(v).lower() in _PRECIP_NAMES]
            if len(by_name) == 1 or len(cands) == 1:
                name = (by_name or cands)[0]
            else:
                raise ValueError(
                    f"{path}: cannot tell the precipitation variable among {cands}; "
                    "set the source's variable"
                )
        da = ds[name].rename({lat: "lat", lon: "lon", time: "time"})
        if set(da.dims) != {"time", "lat", "lon"}:
            raise ValueError(f"{path}: variable {name!r} has dims {da.dims}, expected time/lat/lon")
        da = da.transpose("time", "lat", "lon")
        units = da.attrs.get("units")
        da = crop_to_bbox(da, _padded_bbox(bbox, da)).load()
    return to_mm_per_day(da.astype("float32"), units, source=f"{path}:{name}").rename("precip")


def _padded_bbox(bbox, da):
    """The box grown by one native cell, so the exact crop in _finish sees edge cells."""
    if bbox is None:
        return None
    b = bbox.bounds if isinstance(bbox, Grid) else tuple(map(float, bbox))
    d = float(np.abs(np.diff(da["lon"].values)).min()) if da["lon"].size > 1 else 0.0
    return (b[0] - d, max(-90.0, b[1] - d), b[2] + d, min(90.0, b[3] + d))


def read_netcdf_daily(
    folders,
    days,
    window=None,
    bbox: Sequence[float] | Grid | None = None,
    *,
    variable: str = "",
    threads: int = 1,
) -> xr.DataArray:
    """Registry reader ``netcdf_daily``: daily precipitation (mm/day) from ``(time, lat, lon)`` NetCDF.

    Parameters
    ----------
    folders : path or sequence of paths
        NetCDF files, or folders searched recursively for ``.nc``/``.nc4`` files (one per
        year, per day, or the whole record); files without any wanted day are skipped.
    days, window, bbox
        As in :func:`read_geotiff_daily`.
    variable : str
        Variable name; empty picks the only 3-D variable or the one named like precipitation.
    threads : int
        Unused.

    Returns
    -------
    xarray.DataArray
        ``precip(time, lat, lon)`` float32 mm/day, latitude descending, ``time`` = ``days``.
        Values are converted from the variable's ``units`` (mm/day, mm/h, kg m-2 s-1, m).
    """
    days = as_days(days)
    _window_note(window, "netcdf_daily")
    return _read_dated_files(
        "netcdf_daily",
        folders,
        _NC_SUFFIXES,
        days,
        bbox,
        lambda f: _open_nc(f, variable, bbox),
        "has days in",
        keep=lambda da: pd.DatetimeIndex(da["time"].values).normalize().isin(days).any(),
    )
