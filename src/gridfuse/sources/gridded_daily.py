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
from .qc import SourceQC, check_values

logger = logging.getLogger(__name__)

__all__ = [
    "read_geotiff_daily",
    "read_netcdf_daily",
    "read_geotiff",
    "read_netcdf",
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

    Missing units are taken as mm/day (with a log message); units without a known
    conversion raise (:mod:`gridfuse.sources.units`).
    """
    from . import registry
    from .qc import units_factor

    if not units:
        logger.info("%s: no units attribute, taking values as mm/day", source or da.name)
        return da
    spec = registry.get_format("netcdf_daily").variable()
    scale, offset = units_factor(units, spec, path=source or da.name, qc=SourceQC())
    return da * scale + offset if (scale, offset) != (1.0, 0.0) else da


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


def _finish(
    da: xr.DataArray, days: pd.DatetimeIndex, bbox, source: str, qc: SourceQC | None = None
) -> xr.DataArray:
    """Select the product days, crop and package as ``precip``; days without data are NaN
    and recorded in ``qc`` as missing (in runs of dates)."""
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
    absent = days.difference(present)
    n_missing = int(absent.size)
    if n_missing:
        logger.warning(
            "%s: %d of %d product day(s) absent from the input (first %s), set to NaN",
            source,
            n_missing,
            days.size,
            f"{absent[0]:%Y-%m-%d}",
        )
        if qc is not None:
            for a, b in _date_runs(absent):
                qc.file_missing(f"no file holds {a:%Y-%m-%d}..{b:%Y-%m-%d}")
        da = da.reindex(time=days)
    values = da.values.astype("float32", copy=True)
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


def _date_runs(dates: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    if dates.empty:
        return []
    d = pd.DatetimeIndex(dates).sort_values()
    ns = d.values.astype("datetime64[ns]").astype("i8")
    breaks = np.flatnonzero(np.diff(ns) != pd.Timedelta("1D").value)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, d.size - 1]
    return [(d[a], d[b]) for a, b in zip(starts, ends)]


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
    """Files ending in ``suffixes`` given as files or folders searched recursively.

    A folder that does not exist is skipped (with a per-year ``{year}`` path the ingest
    also searches the neighbouring years' folders, which need not exist; the year's own
    folder is checked before the run starts); none existing, or no file, is an error.
    """
    if isinstance(folders, (str, Path)):
        folders = [folders]
    files: list[Path] = []
    existing = []
    for folder in map(Path, folders):
        if folder.is_file():
            files.append(folder)
            existing.append(folder)
        elif folder.is_dir():
            existing.append(folder)
            files += sorted(
                p
                for p in folder.rglob("*")
                if p.is_file() and p.name.lower().endswith(tuple(suffixes))
            )
        else:
            logger.debug("%s: no such file or folder (skipped)", folder)
    if not existing:
        raise FileNotFoundError(f"{list(map(str, folders))}: no such file or folder")
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


def _tif_units(src) -> str:
    units = [u for u in (getattr(src, "units", None) or ()) if u]
    return units[0] if units else str(src.tags().get("units", ""))


def _read_tif(path: Path, first_date, bbox, qc: SourceQC | None = None) -> xr.DataArray:
    import rasterio
    from rasterio.windows import Window

    uri = f"/vsigzip/{path}" if path.suffix == ".gz" else str(path)
    try:
        src = rasterio.open(uri)
    except rasterio.errors.RasterioIOError as err:
        raise OSError(f"{path}: cannot be read as GeoTIFF ({err})") from err
    with src:
        dates = (
            pd.DatetimeIndex([date_from_name(path.name)])
            if src.count == 1 and date_from_name(path.name) is not None
            else _band_dates(src, first_date)
        )
        units = _tif_units(src)
        if src.crs is not None and not src.crs.is_geographic:
            da = _projected_tif(src, path, dates)
            return _checked(da, units, path, qc)
        t = src.transform
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise ValueError(f"{path}: not a north-up, unrotated raster (transform {t})")
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
        try:
            data = src.read(window=window).astype("float32")
        except rasterio.errors.RasterioIOError as err:
            raise OSError(f"{path}: cannot be read as GeoTIFF ({err})") from err
        data = _nodata_to_nan(data, src.nodata)
        x0 = t.c + window.col_off * t.a
        y0 = t.f + window.row_off * t.e
    # cell centres from the transform, in float64, rounded to far below the cell size
    lon = np.round(x0 + (np.arange(data.shape[2]) + 0.5) * t.a, 9)
    lat = np.round(y0 + (np.arange(data.shape[1]) + 0.5) * t.e, 9)
    da = xr.DataArray(
        data,
        dims=("time", "lat", "lon"),
        coords={"time": dates, "lat": lat, "lon": lon},
        name="precip",
    )
    return _checked(da, units, path, qc)


def _nodata_to_nan(data: np.ndarray, nodata) -> np.ndarray:
    """The raster's nodata value (and the float32 -3.4e38 fill GDAL tools write) -> NaN."""
    if nodata is not None:
        nd = np.float32(nodata)
        data[np.isclose(data, nd, rtol=1e-6) | (data == nd)] = np.nan
    data[np.abs(data) > 1e30] = np.nan
    return data


def _projected_tif(src, path: Path, dates) -> xr.DataArray:
    """A raster in a projected CRS, reprojected to EPSG:4326 (nearest)."""
    from ..regrid import to_geographic

    data = _nodata_to_nan(src.read().astype("float32"), src.nodata)
    t = src.transform
    x = t.c + (np.arange(src.width) + 0.5) * t.a
    y = t.f + (np.arange(src.height) + 0.5) * t.e
    da = xr.DataArray(data, dims=("time", "y", "x"), coords={"time": dates, "y": y, "x": x})
    return to_geographic(da, src.crs, what=str(path))


def _checked(da: xr.DataArray, units, path, qc: SourceQC | None) -> xr.DataArray:
    """Units to mm/day and implausible values masked (counted in ``qc``)."""
    from . import registry

    qc = qc if qc is not None else SourceQC()
    spec = registry.get_format("geotiff_daily").variable()
    values = check_values(da.values, spec, units, path=path, qc=qc, variable="precip")
    qc.file_read()
    return da.copy(data=values)


def read_geotiff_daily(
    folders,
    days,
    window=None,
    bbox: Sequence[float] | Grid | None = None,
    *,
    variable: str = "",
    threads: int = 1,
    first_date=None,
    qc: SourceQC | None = None,
) -> xr.DataArray:
    """Daily precipitation (mm/day) from GeoTIFF files (format ``geotiff_daily``).

    Parameters
    ----------
    folders : path or sequence of paths
        Multi-band GeoTIFFs, single daily GeoTIFFs, or folders searched recursively for
        ``.tif``/``.tiff`` (optionally ``.gz``); folders that do not exist are skipped.
        Single-band files take their date from the file name; multi-band files from band
        descriptions/tags, else ``first_date``.
    days : DatetimeIndex-like or int
        Product days wanted (an int: every day of that year).  Days absent from the files
        are NaN and counted in ``attrs["days_missing"]`` (and in ``qc``).
    window : gridfuse.daily.DayWindow, optional
        The product's day window; daily totals cannot be re-windowed (a warning is logged
        for a window not starting at 00 UTC).
    bbox : (west, south, east, north) or Grid, optional
        Keep the source cells overlapping this box.
    variable, threads
        Unused (registry signature); GeoTIFFs hold one variable.
    first_date : date-like, optional
        Date of band 1 of multi-band files that carry no dates.
    qc : SourceQC, optional
        Receives each file's units check (band ``units`` metadata or the ``units`` tag;
        none = mm/day), the values masked as physically impossible, the missing days.

    A raster in a projected CRS is reprojected to EPSG:4326 (nearest neighbour).

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
        lambda f: _read_tif(f, first_date, bbox, qc),
        "is dated within",
        qc=qc,
    )


def _read_dated_files(label, folders, suffixes, days, bbox, read_one, what, keep=None, qc=None):
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
    return _finish(da, days, bbox, label, qc)


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


_METRES = ("m", "metre", "metres", "meter", "meters", "km", "kilometre", "kilometres")


def _is_projected(ds: xr.Dataset, xname: str, yname: str) -> bool:
    """Coordinates in metres (units, projection_x_coordinate, or values beyond lon/lat)."""
    for name in (xname, yname):
        c = ds[name]
        units = str(c.attrs.get("units", "")).strip().lower()
        sn = str(c.attrs.get("standard_name", "")).lower()
        if units in _METRES or sn.startswith("projection_"):
            return True
    x = np.asarray(ds[xname].values, dtype="f8")
    y = np.asarray(ds[yname].values, dtype="f8")
    return bool(x.size and y.size and (np.nanmax(np.abs(x)) > 360 or np.nanmax(np.abs(y)) > 90))


def _crs_of(ds: xr.Dataset, var: xr.DataArray, path):
    """The CRS of a projected NetCDF variable from its CF ``grid_mapping`` (or ``crs_wkt`` /
    ``spatial_ref``); None when the file states none."""
    from pyproj import CRS

    gm = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
    names = [gm] if gm else [n for n in ("crs", "spatial_ref", "transverse_mercator") if n in ds]
    for n in names:
        if n not in ds.variables:
            continue
        attrs = ds[n].attrs
        for key in ("crs_wkt", "spatial_ref"):
            if attrs.get(key):
                return CRS.from_wkt(str(attrs[key]))
        try:
            return CRS.from_cf(dict(attrs))
        except Exception as err:  # noqa: BLE001 - pyproj raises several types
            raise ValueError(
                f"{path}: grid_mapping {n!r} cannot be turned into a CRS ({err})"
            ) from err
    return None


def _open_nc(
    path: Path, variable: str, bbox, days=None, qc: SourceQC | None = None
) -> xr.DataArray:
    try:
        ds = xr.open_dataset(path)
    except Exception as err:
        raise OSError(f"{path}: cannot be read as NetCDF ({err})") from err
    with ds:
        lat = _pick(ds, ("lat", "latitude", "y"), "latitude (or y)", path)
        lon = _pick(ds, ("lon", "longitude", "x"), "longitude (or x)", path)
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
        var = ds[name]
        if set(var.dims) != {time, lat, lon}:
            raise ValueError(
                f"{path}: variable {name!r} has dims {var.dims}, expected ({time}, {lat}, {lon})"
            )
        if days is not None:
            t = pd.DatetimeIndex(ds[time].values).normalize()
            var = var.isel({time: np.flatnonzero(t.isin(days))})
        units = var.attrs.get("units")
        try:
            if _is_projected(ds, lon, lat):
                crs = _crs_of(ds, var, path)
                if crs is None:
                    raise ValueError(
                        f"{path}: coordinates {lon!r}/{lat!r} are projected (metres), and the "
                        f"file states no CRS (no grid_mapping variable with crs_wkt or CF "
                        f"projection parameters); reproject it to EPSG:4326 lon/lat, or add "
                        f"a CF grid_mapping"
                    )
                from ..regrid import to_geographic

                da = var.rename({lat: "y", lon: "x", time: "time"}).transpose("time", "y", "x")
                da = to_geographic(da.load().astype("float32"), crs, what=str(path))
                da = crop_to_bbox(da, _padded_bbox(bbox, da))
            else:
                da = var.rename({lat: "lat", lon: "lon", time: "time"}).transpose(
                    "time", "lat", "lon"
                )
                da = crop_to_bbox(da, _padded_bbox(bbox, da)).load()
        except (RuntimeError, OSError) as err:
            raise OSError(f"{path}: {name} cannot be read ({err})") from err
    from . import registry

    qc = qc if qc is not None else SourceQC()
    spec = registry.get_format("netcdf_daily").variable()
    values = check_values(da.values, spec, units, path=path, qc=qc, variable=str(name))
    qc.file_read()
    return da.copy(data=values).rename("precip")


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
    qc: SourceQC | None = None,
) -> xr.DataArray:
    """Daily precipitation (mm/day) from ``(time, lat, lon)`` NetCDF (format ``netcdf_daily``).

    Parameters
    ----------
    folders : path or sequence of paths
        NetCDF files, or folders searched recursively for ``.nc``/``.nc4`` files (one per
        year, per day, or the whole record); files without any wanted day are skipped, and
        folders that do not exist too.
    days, window, bbox, qc
        As in :func:`read_geotiff_daily`.
    variable : str
        Variable name; empty picks the only 3-D variable or the one named like precipitation.
    threads : int
        Unused.

    Coordinates in metres (``x``/``y`` of a projected grid) are reprojected to EPSG:4326
    (nearest neighbour) when the file states its CRS (a CF ``grid_mapping``); without one
    the error says so.

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
        lambda f: _open_nc(f, variable, bbox, days, qc),
        "has days in",
        keep=lambda da: da.sizes["time"] > 0,
        qc=qc,
    )


def read_geotiff(req) -> xr.Dataset:
    """Registry reader (``format: geotiff_daily``); ``req.options["first_date"]`` dates band 1
    of multi-band files without dates."""
    first = (req.options or {}).get("first_date") or None
    da = read_geotiff_daily(
        req.folders, req.days, req.window, req.bbox, first_date=first, qc=req.qc
    )
    return da.to_dataset()


def read_netcdf(req) -> xr.Dataset:
    """Registry reader (``format: netcdf_daily``)."""
    da = read_netcdf_daily(
        req.folders, req.days, req.window, req.bbox, variable=req.variable, qc=req.qc
    )
    return da.to_dataset()
