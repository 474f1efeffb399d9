"""TROPOMI (Sentinel-5P) L2 SO2: read, screen, and bin pixel footprints to a daily grid.

The L2 files (``S5P_<stream>_L2__SO2____<start>_<end>_<orbit>_<collection>_<processor>_<production>.nc``)
are netCDF4 with groups.  Group ``PRODUCT`` holds ``sulfurdioxide_total_vertical_column``
(mol m-2), ``qa_value`` (0-1), ``latitude``/``longitude`` (pixel centres), ``time`` (seconds since
2010-01-01) and ``delta_time`` (ms since ``time`` per scanline), all on
``(time=1, scanline, ground_pixel)``.  Pixel corners are in ``PRODUCT/SUPPORT_DATA/GEOLOCATIONS``
(``latitude_bounds``/``longitude_bounds``, extra dim ``corner=4``, corners in cyclic order), the
cloud fraction in ``PRODUCT/SUPPORT_DATA/INPUT_DATA/cloud_fraction_crb``.

Gridding is area-weighted binning, the synthetic equivalent of HARP's ``bin_spatial``: each
pixel's footprint quad is *supersampled* with ``n_sub x n_sub`` points placed bilinearly between
its four corners (the centres of an even ``n_sub x n_sub`` partition of the quad's parameter
square), each point carrying ``pixel area / n_sub**2``.  Binning those points into grid cells
approximates each pixel's overlap area with each cell to within ``1 / n_sub**2`` of the pixel
area; the cell value is ``sum(overlap * column) / sum(overlap)`` over all valid pixels of the
product day.  This is exact for a constant field, fully vectorized, and avoids polygon clipping.
``n_pixels`` counts the distinct pixels that overlap a cell.  Centre binning (each pixel to the
cell holding its centre, equal weights) is available as ``method="centre"``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..grid import Grid
from .qc import SourceQC, check_values

logger = logging.getLogger(__name__)

__all__ = [
    "TropomiPixels",
    "DU_PER_MOL_M2",
    "EPOCH",
    "l2_filename",
    "parse_l2_filename",
    "list_l2_files",
    "read_l2",
    "quad_subpoints",
    "pixel_areas_km2",
    "bin_pixels",
    "native_grid",
    "product_day",
    "grid_daily",
    "read",
    "write_l2",
]

DU_PER_MOL_M2 = 2241.15  # 1 DU = 2.6867e20 molecules m-2 = 4.4615e-4 mol m-2
EPOCH = np.datetime64("2010-01-01T00:00:00", "ns")  # TROPOMI time reference
COLUMN = "sulfurdioxide_total_vertical_column"
_FILL = np.float32(9.96921e36)
_NAME_RE = re.compile(
    r"^S5P_(?P<stream>[A-Z]{4})_L2__SO2____(?P<start>\d{8}T\d{6})_(?P<end>\d{8}T\d{6})_"
    r"(?P<orbit>\d{5})_(?P<collection>\d{2})_(?P<processor>\d{6})_(?P<production>\d{8}T\d{6})\.nc$"
)
_EARTH_RADIUS_KM = 6371.0088


# ---------------------------------------------------------------------------- file names
def l2_filename(
    start: _dt.datetime,
    end: _dt.datetime,
    orbit: int,
    *,
    stream: str = "OFFL",
    collection: str = "01",
    processor: str = "010107",
    production: _dt.datetime | None = None,
) -> str:
    """The real L2 SO2 file name for an orbit (``S5P_OFFL_L2__SO2____...nc``)."""
    production = production or (end + _dt.timedelta(days=5))
    f = "%Y%m%dT%H%M%S"
    return (
        f"S5P_{stream}_L2__SO2____{start:{f}}_{end:{f}}_{orbit:05d}_{collection}_{processor}_"
        f"{production:{f}}.nc"
    )


def parse_l2_filename(name: str | os.PathLike) -> dict:
    """Split an L2 SO2 file name into ``stream, start, end, orbit, collection, processor``.

    Raises ``ValueError`` naming the file when it does not follow the pattern.
    """
    m = _NAME_RE.match(Path(name).name)
    if not m:
        raise ValueError(
            f"{name}: not a TROPOMI L2 SO2 file name "
            "(expected S5P_<stream>_L2__SO2____<start>_<end>_<orbit>_<coll>_<proc>_<prod>.nc)"
        )
    d = m.groupdict()
    for k in ("start", "end", "production"):
        d[k] = pd.Timestamp(_dt.datetime.strptime(d[k], "%Y%m%dT%H%M%S"))
    d["orbit"] = int(d["orbit"])
    return d


def list_l2_files(folder: str | os.PathLike, first: pd.Timestamp, last: pd.Timestamp) -> list[Path]:
    """L2 SO2 files under ``folder`` (recursively) whose orbit overlaps ``[first, last]``.

    Non-matching file names are ignored; the result is sorted by orbit start time.
    """
    out = []
    for p in Path(folder).rglob("S5P_*_L2__SO2____*.nc"):
        info = parse_l2_filename(p)
        if info["end"] >= first and info["start"] <= last:
            out.append((info["start"], p))
    return [p for _, p in sorted(out)]


# ---------------------------------------------------------------------------- reading
@dataclass
class TropomiPixels:
    """Valid pixels of one or more orbits as flat arrays (one row per pixel)."""

    column: np.ndarray  # (n,) mol m-2
    lon_bounds: np.ndarray  # (n, 4) degrees east, cyclic corner order
    lat_bounds: np.ndarray  # (n, 4)
    time: np.ndarray  # (n,) datetime64[ns] UTC measurement time
    counts: dict = field(default_factory=dict)  # screening decisions
    seen: np.ndarray = field(
        default_factory=lambda: np.empty(0, "M8[ns]")
    )  # scanline times in bbox

    @property
    def size(self) -> int:
        return int(self.column.size)

    @classmethod
    def concat(cls, parts: Sequence[TropomiPixels]) -> TropomiPixels:
        if not parts:
            return cls(np.empty(0, "f8"), np.empty((0, 4)), np.empty((0, 4)), np.empty(0, "M8[ns]"))
        counts: dict = {}
        for p in parts:
            for k, v in p.counts.items():
                counts[k] = counts.get(k, 0) + v
        return cls(
            np.concatenate([p.column for p in parts]),
            np.concatenate([p.lon_bounds for p in parts]),
            np.concatenate([p.lat_bounds for p in parts]),
            np.concatenate([p.time for p in parts]),
            counts,
            np.concatenate([p.seen for p in parts]),
        )


def _var(group, name: str, path, where: str):
    try:
        return group.variables[name]
    except KeyError:
        raise ValueError(
            f"{path}: variable {where}/{name} not found (has: {sorted(group.variables)})"
        ) from None


def _group(nc, names: Sequence[str], path):
    g = nc
    for i, n in enumerate(names):
        try:
            g = g.groups[n]
        except KeyError:
            where = "/".join(names[:i]) or "/"
            raise ValueError(
                f"{path}: group {'/'.join(names[: i + 1])} not found (groups in {where}: "
                f"{sorted(g.groups)}); not a TROPOMI L2 file?"
            ) from None
    return g


def _read(var, rows: slice) -> np.ndarray:
    """Read ``var[0, rows, ...]`` as float64 with fill values as NaN."""
    arr = var[0, rows]
    return np.ma.filled(np.ma.asarray(arr, dtype="f8"), np.nan)


def read_l2(
    path: str | os.PathLike,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    qa_min: float = 0.5,
    cloud_max: float | None = 0.3,
    column_min: float | None = -0.001,
    cloud_variable: str = "cloud_fraction_crb",
    qc: SourceQC | None = None,
) -> TropomiPixels:
    """Read the valid pixels of one L2 SO2 file.

    Parameters
    ----------
    path : path-like
        An ``S5P_*_L2__SO2____*.nc`` file.
    bbox : (west, south, east, north), optional
        Keep only pixels whose footprint touches this box (only the scanlines that cross it
        are read).
    qa_min : float
        Keep pixels with ``qa_value > qa_min`` (0.5 is the recommended screening).
    cloud_max : float or None
        Keep pixels with cloud fraction ``< cloud_max`` (None: no cloud screening).
    column_min : float or None
        Drop negative outliers with column ``<= column_min`` mol m-2 (negative columns above it are
        noise and kept, so that averages stay unbiased).
    cloud_variable : str
        Cloud fraction variable, looked up in ``SUPPORT_DATA/INPUT_DATA`` then ``DETAILED_RESULTS``.
    qc : SourceQC, optional
        Receives the column's units check and the values masked as physically impossible
        (:func:`gridfuse.sources.qc.check_values`); a column whose magnitude does not fit
        its units (DU labelled mol m-2) is an error naming the file.

    Returns
    -------
    TropomiPixels
        Valid pixels; ``counts`` records how many pixels each screening step removed.
    """
    import netCDF4

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such TROPOMI L2 file")
    qc = qc if qc is not None else SourceQC("tropomi")
    try:
        nc = netCDF4.Dataset(path)
    except OSError as err:
        raise OSError(f"{path}: cannot be read as netCDF4 ({err})") from err
    try:
        return _read_open(nc, path, bbox, qa_min, cloud_max, column_min, cloud_variable, qc)
    except (RuntimeError, OSError) as err:  # HDF errors while reading variables
        if str(path) in str(err):
            raise
        raise OSError(f"{path}: cannot be read as a TROPOMI L2 file ({err})") from err
    finally:
        nc.close()


def _bounds(nc, path) -> tuple[np.ndarray, np.ndarray]:
    """Pixel corner latitudes and longitudes ``(scanline, ground_pixel, 4)``, NaN for fill."""
    prod = _group(nc, ["PRODUCT"], path)
    geo = _group(nc, ["PRODUCT", "SUPPORT_DATA", "GEOLOCATIONS"], path)
    lat_v = _var(prod, "latitude", path, "PRODUCT")
    if lat_v.ndim != 3 or lat_v.shape[0] != 1:
        raise ValueError(
            f"{path}: PRODUCT/latitude has shape {lat_v.shape}, expected "
            "(time=1, scanline, ground_pixel)"
        )
    lat_b, lon_b = (
        np.ma.filled(np.ma.asarray(_var(geo, name, path, "GEOLOCATIONS")[0], "f8"), np.nan)
        for name in ("latitude_bounds", "longitude_bounds")
    )
    if lat_b.shape != lat_v.shape[1:] + (4,):
        raise ValueError(
            f"{path}: GEOLOCATIONS/latitude_bounds has shape {lat_b.shape}, expected "
            f"{lat_v.shape[1:] + (4,)}"
        )
    return lat_b, lon_b


def _touching(lat_b, lon_b, bbox) -> np.ndarray:
    """Pixels whose footprint touches ``bbox``."""
    w, s, e, n = bbox
    return (lat_b.max(-1) >= s) & (lat_b.min(-1) <= n) & (lon_b.max(-1) >= w) & (lon_b.min(-1) <= e)


def _cloud(nc, path, rows: slice, cloud_variable: str) -> np.ndarray:
    sup = _group(nc, ["PRODUCT", "SUPPORT_DATA"], path)
    for sub in ("INPUT_DATA", "DETAILED_RESULTS"):
        if sub in sup.groups and cloud_variable in sup.groups[sub].variables:
            return _read(sup.groups[sub].variables[cloud_variable], rows)
    raise ValueError(
        f"{path}: cloud fraction {cloud_variable!r} not found in "
        "PRODUCT/SUPPORT_DATA/INPUT_DATA or DETAILED_RESULTS (set cloud_max to None "
        "to skip cloud screening)"
    )


def _read_open(nc, path, bbox, qa_min, cloud_max, column_min, cloud_variable, qc):
    from . import registry

    prod = _group(nc, ["PRODUCT"], path)
    lat_b, lon_b = _bounds(nc, path)
    rows = slice(None)
    if bbox is not None:
        hit = np.flatnonzero(_touching(lat_b, lon_b, bbox).any(axis=1))
        if hit.size == 0:
            logger.info("%s: no pixel inside %s", path.name, bbox)
            return TropomiPixels.concat([])
        rows = slice(int(hit[0]), int(hit[-1]) + 1)
        lat_b, lon_b = lat_b[rows], lon_b[rows]
    col_v = _var(prod, COLUMN, path, "PRODUCT")
    spec = registry.get_format("tropomi_l2").variable(COLUMN)
    units = getattr(col_v, "units", "")
    col = check_values(_read(col_v, rows), spec, units, path=path, qc=qc, variable=COLUMN)
    col = col.astype("f8")
    qa = _read(_var(prod, "qa_value", path, "PRODUCT"), rows)
    t0 = np.asarray(_var(prod, "time", path, "PRODUCT")[:]).astype("i8")[0]
    dt = np.asarray(_var(prod, "delta_time", path, "PRODUCT")[0, rows]).astype("i8")
    cloud = _cloud(nc, path, rows, cloud_variable) if cloud_max is not None else None
    scan_times = EPOCH + np.timedelta64(int(t0), "s") + dt.astype("timedelta64[ms]")
    times = np.broadcast_to(scan_times[:, None], col.shape)
    keep = np.isfinite(col) & np.isfinite(lat_b).all(-1) & np.isfinite(lon_b).all(-1)
    counts = {"pixels": int(col.size), "missing": int((~keep).sum())}
    for name, bad in (
        ("qa", ~(qa > qa_min)),
        ("cloud", None if cloud is None else ~(cloud < cloud_max)),
        ("negative_outlier", None if column_min is None else ~(col > column_min)),
    ):
        if bad is None:
            continue
        counts[name] = int((keep & bad).sum())
        keep &= ~bad
    seen = np.asarray(scan_times, dtype="M8[ns]")
    if bbox is not None:
        inside = _touching(lat_b, lon_b, bbox)
        keep &= inside
        seen = seen[inside.any(axis=1)]
    counts["valid"] = int(keep.sum())
    logger.info("%s: %s", path.name, counts)
    return TropomiPixels(
        column=col[keep],
        lon_bounds=lon_b[keep],
        lat_bounds=lat_b[keep],
        time=np.asarray(times[keep], dtype="M8[ns]"),
        counts=counts,
        seen=seen,
    )


# ---------------------------------------------------------------------------- binning
def quad_subpoints(
    lon_bounds: np.ndarray, lat_bounds: np.ndarray, n_sub: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Points supersampling quadrilaterals, bilinear between their four cyclic corners.

    Returns ``(lon, lat)`` of shape ``(npix, n_sub * n_sub)``: the images of the centres of an
    ``n_sub x n_sub`` partition of the unit square under the bilinear map
    ``(1-s)(1-t) c0 + s(1-t) c1 + s t c2 + (1-s) t c3``.
    """
    if n_sub < 1:
        raise ValueError(f"n_sub must be >= 1, got {n_sub}")
    u = (np.arange(n_sub) + 0.5) / n_sub
    s, t = (a.ravel() for a in np.meshgrid(u, u, indexing="ij"))
    w = np.stack([(1 - s) * (1 - t), s * (1 - t), s * t, (1 - s) * t])  # (4, n_sub**2)
    return np.asarray(lon_bounds) @ w, np.asarray(lat_bounds) @ w


def pixel_areas_km2(lon_bounds: np.ndarray, lat_bounds: np.ndarray) -> np.ndarray:
    """Approximate quad areas (km2): shoelace formula in a local equirectangular frame."""
    lat0 = np.deg2rad(lat_bounds.mean(axis=-1, keepdims=True))
    k = np.pi / 180 * _EARTH_RADIUS_KM
    x = (lon_bounds - lon_bounds[..., :1]) * k * np.cos(lat0)
    y = (lat_bounds - lat_bounds[..., :1]) * k
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1))


def bin_pixels(
    values: np.ndarray,
    lon_bounds: np.ndarray,
    lat_bounds: np.ndarray,
    grid: Grid,
    *,
    method: str = "area",
    n_sub: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin pixel footprints onto a grid; returns weight sum, weighted value sum, pixel count.

    Parameters
    ----------
    values : (n,) array
        Pixel values (finite).
    lon_bounds, lat_bounds : (n, 4) arrays
        Footprint corners in cyclic order.
    grid : Grid
        Target grid; pixels or sub-points outside it are ignored.
    method : {"area", "centre"}
        ``area``: overlap-area weights from ``n_sub x n_sub`` supersampling (see module notes);
        ``centre``: each pixel counts once, with weight 1, in the cell holding its centre.
    n_sub : int
        Sub-points per footprint side for ``area``; raised where needed so that the sub-point
        spacing stays below 2/3 of a cell (pixels larger than cells would otherwise skip cells).

    Returns
    -------
    wsum, vsum, count : arrays of ``grid.shape``
        ``vsum / wsum`` is the (area-weighted) mean; ``count`` the number of distinct pixels
        overlapping each cell.
    """
    values = np.asarray(values, dtype="f8")
    ncell = grid.size
    if method == "centre":
        lon_c, lat_c = quad_subpoints(lon_bounds, lat_bounds, 1)
        row, col = grid.rowcol(lon_c[:, 0], lat_c[:, 0], check=False)
        ok = row >= 0
        cell = row[ok] * grid.nlon + col[ok]
        wsum = np.bincount(cell, minlength=ncell).astype("f8")
        vsum = np.bincount(cell, weights=values[ok], minlength=ncell)
        count = wsum.astype("i8")
    elif method == "area":
        if values.size:
            # sub-points must be denser than the cells, else small cells get skipped
            extent = max(
                float(np.ptp(lon_bounds, axis=-1).max()), float(np.ptp(lat_bounds, axis=-1).max())
            )
            n_sub = max(n_sub, int(np.ceil(1.5 * extent / grid.res)))
        lon_s, lat_s = quad_subpoints(lon_bounds, lat_bounds, n_sub)
        w_pix = pixel_areas_km2(lon_bounds, lat_bounds) / (n_sub * n_sub)
        row, col = grid.rowcol(lon_s.ravel(), lat_s.ravel(), check=False)
        ok = row >= 0
        cell = (row * grid.nlon + col)[ok]
        pix = np.repeat(np.arange(values.size), n_sub * n_sub)[ok]
        w = w_pix[pix]
        wsum = np.bincount(cell, weights=w, minlength=ncell)
        vsum = np.bincount(cell, weights=w * values[pix], minlength=ncell)
        pairs = np.unique(pix.astype("i8") * ncell + cell)
        count = np.bincount(pairs % ncell, minlength=ncell)
    else:
        raise ValueError(f"binning method must be 'area' or 'centre', got {method!r}")
    return wsum.reshape(grid.shape), vsum.reshape(grid.shape), count.reshape(grid.shape)


def native_grid(grid: Grid, res: float, margin: float) -> Grid:
    """A ``res`` grid aligned to multiples of ``res`` covering ``grid`` plus ``margin`` degrees."""
    w = np.floor((grid.west - margin) / res + 1e-9) * res
    s = np.floor((grid.south - margin) / res + 1e-9) * res
    e = np.ceil((grid.east + margin) / res - 1e-9) * res
    n = np.ceil((grid.north + margin) / res - 1e-9) * res
    return Grid(w, max(-90.0, s), e, min(90.0, n), res)


def product_day(times, utc_start_hour: int) -> np.ndarray:
    """Product day (datetime64[D]) of UTC times: day D runs from ``H`` UTC of D-1 to ``H`` of D.

    With ``utc_start_hour`` 0 the product day is the UTC day.
    """
    t = np.asarray(times, dtype="M8[ns]")
    shift = np.timedelta64((24 - utc_start_hour) % 24, "h")
    return (t + shift).astype("M8[D]")


def _start_of(path) -> pd.Timestamp:
    try:
        return parse_l2_filename(path)["start"]
    except ValueError:
        return pd.Timestamp.min


def grid_daily(
    files: Iterable[str | os.PathLike],
    grid: Grid,
    days: pd.DatetimeIndex,
    *,
    utc_start_hour: int = 0,
    method: str = "area",
    n_sub: int = 5,
    qa_min: float = 0.5,
    cloud_max: float | None = 0.3,
    column_min: float | None = -0.001,
    qc: SourceQC | None = None,
) -> xr.Dataset:
    """Daily mean SO2 column and pixel count on ``grid`` from L2 files.

    Every valid pixel is assigned to its product day from its measurement time; cells without
    any valid pixel on a day are NaN (``n_pixels`` 0).  Files are read one at a time in the
    order of their start times (from the file names), so that float64 sums are held only for
    the days still receiving orbits; the result itself takes 6 bytes per cell-day.

    ``qc`` (optional) receives each file's units check and masked values, the screening
    counts, and which days have any orbit over the grid (``qc.day_has_data``): a day without
    one is a lost day, a day whose pixels were all screened out (clouds) is not.

    Returns
    -------
    xr.Dataset
        ``so2_column`` (mol m-2, float32) and ``n_pixels`` (int16) on ``(time, lat, lon)``; the
        screening counts are in ``attrs``.
    """
    qc = qc if qc is not None else SourceQC("tropomi")
    days = pd.DatetimeIndex(days).normalize()
    acc = _DailyBins(grid, days)
    seen_days: set = set()
    totals: dict = {}
    files = sorted(files, key=lambda f: (_start_of(f), str(f)))
    for f in files:
        pix = read_l2(
            f, bbox=grid.bounds, qa_min=qa_min, cloud_max=cloud_max, column_min=column_min, qc=qc
        )
        qc.file_read()
        seen_days.update(str(d) for d in np.unique(product_day(pix.seen, utc_start_hour)))
        for k, v in pix.counts.items():
            totals[k] = totals.get(k, 0) + v
        if pix.size:
            acc.add(pix, product_day(pix.time, utc_start_hour), f, method, n_sub)
    mean, count = acc.finish()
    ds = _daily_dataset(grid, days, mean, count, method, totals, len(files))
    covered = np.isfinite(mean).any(axis=(1, 2))
    qc.day_has_data = np.array([f"{d:%Y-%m-%d}" in seen_days for d in days], dtype=bool)
    for k in ("qa", "cloud", "negative_outlier"):
        if k in totals:
            qc.note(f"screened_{k}", totals[k], totals.get("pixels", 0), "TROPOMI pixels removed")
    qc.note(
        "days_all_screened",
        int((qc.day_has_data & ~covered).sum()),
        len(days),
        "days with orbits over the grid but no valid pixel (clouds, qa): NaN, not lost",
    )
    logger.info(
        "TROPOMI daily grid %s: %d files, %d/%d days with data, %.1f%% cell-days empty",
        grid.describe(),
        len(files),
        int(covered.sum()),
        len(days),
        100 * float(np.isnan(mean).mean()) if mean.size else 0.0,
    )
    return ds


class _DailyBins:
    """Per-day binning sums, held only for the days still receiving orbits (float64), and
    the finished days as mean (float32) and count (int16)."""

    def __init__(self, grid: Grid, days: pd.DatetimeIndex) -> None:
        self.grid, self.days = grid, days
        self.day_index = {d.to_datetime64().astype("M8[D]"): i for i, d in enumerate(days)}
        self.mean = np.full((len(days),) + grid.shape, np.nan, dtype="f4")
        self.count = np.zeros(self.mean.shape, dtype="i2")
        self.open: dict[int, list[np.ndarray]] = {}
        self.closed: set[int] = set()

    def close(self, i: int) -> None:
        w, v, c = self.open.pop(i)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean[i] = np.where(w > 0, v / np.where(w > 0, w, 1.0), np.nan)
        self.count[i] = np.minimum(c, np.iinfo("i2").max)
        self.closed.add(i)

    def add(self, pix: TropomiPixels, pday: np.ndarray, path, method: str, n_sub: int) -> None:
        # orbits come in time order (sorted by their names' start): days ending more than a
        # day before this orbit's first pixel receive nothing more
        first_day = pday.min()
        for i in [
            i
            for i in self.open
            if self.days[i].to_datetime64() < first_day - np.timedelta64(1, "D")
        ]:
            self.close(i)
        for d in np.unique(pday):
            i = self.day_index.get(d)
            if i is None:
                continue
            if i in self.closed:
                raise ValueError(
                    f"{path}: pixels of {d} arrive after later orbits were processed; the "
                    "file's name does not match its measurement times"
                )
            sel = pday == d
            w, v, c = bin_pixels(
                pix.column[sel],
                pix.lon_bounds[sel],
                pix.lat_bounds[sel],
                self.grid,
                method=method,
                n_sub=n_sub,
            )
            if i in self.open:
                for acc, new in zip(self.open[i], (w, v, c)):
                    acc += new
            else:
                self.open[i] = [w, v, c]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        for i in list(self.open):
            self.close(i)
        return self.mean, self.count


def _daily_dataset(grid, days, mean, count, method, totals, nfiles) -> xr.Dataset:
    coords = grid.coords()
    coords["time"] = xr.DataArray(days, dims="time")
    return xr.Dataset(
        {
            "so2_column": (
                ("time", "lat", "lon"),
                mean,
                {
                    "units": "mol m-2",
                    "long_name": "SO2 total vertical column, daily mean of valid pixels",
                    "cell_methods": f"time: mean area: mean (TROPOMI pixels, {method} weights)",
                    "multiplication_factor_to_convert_to_DU": DU_PER_MOL_M2,
                },
            ),
            "n_pixels": (
                ("time", "lat", "lon"),
                count,
                {"units": "1", "long_name": "number of valid TROPOMI pixels overlapping the cell"},
            ),
        },
        coords=coords,
        attrs={f"pixels_{k}": int(v) for k, v in totals.items()} | {"l2_files": nfiles},
    )


def read(req) -> xr.Dataset:
    """Registry reader (``format: tropomi_l2``): daily ``so2_column`` and ``n_pixels``.

    L2 files are searched under ``req.folders`` for the days (plus one day each side, as a
    day window reaches into the neighbouring UTC days) and binned onto the native grid of
    ``req.options["grid_res"]`` degrees around ``req.grid`` plus ``req.margin``; screening
    options ``binning, supersample, qa_min, cloud_max, column_min`` come from
    ``req.options`` (the source's config).
    """
    o = dict(req.options or {})
    if req.grid is None:
        raise ValueError("tropomi_l2: the reader needs the product grid (req.grid)")
    first, last = req.days[0] - pd.Timedelta("1D"), req.days[-1] + pd.Timedelta("1D")
    files: list[Path] = []
    for folder in req.folders:
        files += [f for f in list_l2_files(folder, first, last) if f not in files]
    if not files:
        raise FileNotFoundError(
            f"tropomi_l2: no L2 SO2 files (S5P_*_L2__SO2____*.nc) for "
            f"{req.days[0]:%Y-%m-%d}..{req.days[-1]:%Y-%m-%d} under {[str(f) for f in req.folders]}"
        )
    grid = native_grid(req.grid, float(o.get("grid_res", 0.05)), float(req.margin))
    return grid_daily(
        files,
        grid,
        req.days,
        utc_start_hour=req.window.utc_start_hour,
        method=o.get("binning", "area"),
        n_sub=int(o.get("supersample", 5)),
        qa_min=float(o.get("qa_min", 0.5)),
        cloud_max=o.get("cloud_max", 0.3),
        column_min=o.get("column_min", -0.001),
        qc=req.qc,
    )


# ---------------------------------------------------------------------------- writing
def write_l2(
    path: str | os.PathLike,
    *,
    column: np.ndarray,
    lon_bounds: np.ndarray,
    lat_bounds: np.ndarray,
    qa_value: np.ndarray,
    cloud_fraction: np.ndarray,
    reference_time: np.datetime64,
    delta_time_ms: np.ndarray,
    orbit: int,
    precision: np.ndarray | None = None,
) -> Path:
    """Write an L2 SO2 file in the real group layout (for tests and the OSSE demo).

    Arrays are ``(scanline, ground_pixel)`` (bounds with a trailing ``corner=4``);
    ``reference_time`` is the UTC day start the ``delta_time_ms`` per scanline refer to.
    NaN columns are written as the product's fill value.
    """
    import netCDF4

    from ..io import atomic_path

    column = np.asarray(column, dtype="f4")
    ns, ng = column.shape
    ref_s = int((np.datetime64(reference_time, "s") - EPOCH.astype("M8[s]")).astype("i8"))
    ref_iso = str(np.datetime64(reference_time, "s")).replace("T", " ")
    with atomic_path(path, suffix=".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncatts(
                {
                    "Conventions": "CF-1.7",
                    "institution": "gridfuse OSSE (synthetic, TROPOMI L2 layout)",
                    "title": "TROPOMI/S5P SO2 Total Column L2 product",
                    "orbit": np.int32(orbit),
                    "time_reference": ref_iso.replace(" ", "T") + "Z",
                    "processor_version": "1.1.7",
                }
            )
            prod = nc.createGroup("PRODUCT")
            for name, n in (("time", 1), ("scanline", ns), ("ground_pixel", ng), ("corner", 4)):
                prod.createDimension(name, n)
                v = prod.createVariable(name, "i4", (name,))
                v[:] = np.arange(n) if name != "time" else [ref_s]
            prod["time"].setncatts(
                {"units": "seconds since 2010-01-01 00:00:00", "standard_name": "time"}
            )
            dims3 = ("time", "scanline", "ground_pixel")
            dt = prod.createVariable("delta_time", "i4", ("time", "scanline"))
            dt.units = f"milliseconds since {ref_iso}"
            dt[0] = np.asarray(delta_time_ms, dtype="i4")
            lon_c, lat_c = quad_subpoints(lon_bounds.reshape(-1, 4), lat_bounds.reshape(-1, 4), 1)
            for name, arr, units in (
                ("latitude", lat_c.reshape(ns, ng), "degrees_north"),
                ("longitude", lon_c.reshape(ns, ng), "degrees_east"),
            ):
                v = prod.createVariable(name, "f4", dims3, zlib=True)
                v.units = units
                v[0] = arr
            qa = prod.createVariable("qa_value", "u1", dims3, zlib=True, fill_value=np.uint8(255))
            qa.setncatts(
                {"scale_factor": np.float32(0.01), "add_offset": np.float32(0.0), "units": "1"}
            )
            qa[0] = np.clip(np.asarray(qa_value, "f8"), 0, 1)
            for name, arr in ((COLUMN, column), (COLUMN + "_precision", precision)):
                if arr is None:
                    arr = np.full_like(column, 1.3e-4)
                v = prod.createVariable(name, "f4", dims3, zlib=True, fill_value=_FILL)
                v.setncatts(
                    {
                        "units": "mol m-2",
                        "multiplication_factor_to_convert_to_DU": np.float32(DU_PER_MOL_M2),
                    }
                )
                a = np.asarray(arr, dtype="f4")
                v[0] = np.where(np.isfinite(a), a, _FILL)
            sup = prod.createGroup("SUPPORT_DATA")
            geo = sup.createGroup("GEOLOCATIONS")
            for name, arr in (("latitude_bounds", lat_bounds), ("longitude_bounds", lon_bounds)):
                v = geo.createVariable(name, "f4", dims3 + ("corner",), zlib=True)
                v.units = "degrees_north" if name.startswith("lat") else "degrees_east"
                v[0] = np.asarray(arr, dtype="f4")
            det = sup.createGroup("DETAILED_RESULTS")
            for name in ("_1km", "_7km", "_15km"):
                v = det.createVariable(COLUMN + name, "f4", dims3, zlib=True, fill_value=_FILL)
                v.units = "mol m-2"
                v[0] = np.where(np.isfinite(column), column, _FILL)
            flag = det.createVariable("sulfurdioxide_detection_flag", "i1", dims3, zlib=True)
            flag[0] = np.zeros(column.shape, dtype="i1")
            inp = sup.createGroup("INPUT_DATA")
            v = inp.createVariable("cloud_fraction_crb", "f4", dims3, zlib=True, fill_value=_FILL)
            v.units = "1"
            v[0] = np.asarray(cloud_fraction, dtype="f4")
            nc.createGroup("METADATA")
    return Path(path)
