"""Atomic readers and writers for CF NetCDF4 and (cloud-optimized) GeoTIFF.

Every writer writes to a temporary name in the destination folder (``.<name>.gftmp.*``)
and renames it into place, so a killed job never leaves a file that looks complete; the
temporaries a killed job leaves behind are found and removed by
:func:`remove_stale_temporaries`.  Outputs get the permissions of the process umask.

NetCDF files follow CF-1.8 (checked with the IOOS compliance checker in the tests): the
product variable of each kind carries the attributes of :mod:`gridfuse.kinds`; gridded
variables point to a ``crs`` grid mapping (EPSG:4326, read by GDAL and rioxarray); a time
axis of product days has ``time_bnds`` giving each day's UTC window
(:func:`day_bounds`); coordinates have no ``_FillValue``; ``history`` is appended to, and
carries no wall-clock time unless asked for, so the same inputs give the same bytes.
Provenance attributes: ``gridfuse_version``, ``config_hash``, ``sources``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .grid import Grid
from .kinds import KINDS

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_path",
    "config_hash",
    "provenance",
    "history_line",
    "crs_attrs",
    "day_bounds",
    "cf_dataset",
    "write_netcdf",
    "write_netcdf_blocks",
    "read_netcdf",
    "values_at_cells",
    "write_absent",
    "is_absent",
    "write_geotiff",
    "read_geotiff",
    "gzip_file",
    "save_npz",
    "remove_stale_temporaries",
    "CF_VARIABLES",
    "CRS_VARIABLE",
    "TIME_UNITS",
]

# CF metadata of the product variable of every kind (variable name -> attrs).
CF_VARIABLES: dict[str, dict[str, str]] = {k.variable: k.cf_attrs for k in KINDS.values()}
CRS_VARIABLE = "crs"
TIME_UNITS = "days since 1970-01-01"
CALENDAR = "proleptic_gregorian"
# marker in the names of the temporaries of atomic_path (see remove_stale_temporaries)
TMP_MARKER = ".gftmp."
_TMP_RE = re.compile(r"^\..+\.gftmp\.[A-Za-z0-9_]+")
_umask_lock = threading.Lock()


def config_hash(cfg: Mapping | None) -> str:
    """Short, stable hash of a (JSON-serializable) configuration mapping."""
    blob = json.dumps(cfg or {}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def history_line(what: str = "", *, timestamp: bool = False) -> str:
    """One line of a CF ``history`` attribute: ``gridfuse <version>: <what>``.

    No wall-clock time by default, so that the same inputs give byte-identical files;
    ``timestamp=True`` prefixes the UTC time of the call (CF's usual form).
    """
    line = f"gridfuse {__version__}" + (f": {what}" if what else "")
    if timestamp:
        line = f"{_dt.datetime.now(_dt.UTC):%Y-%m-%dT%H:%M:%SZ} {line}"
    return line


def provenance(
    cfg: Mapping | None = None,
    sources: Iterable[str] = (),
    *,
    history: str | None = None,
    what: str = "",
    timestamp: bool = False,
    **extra,
) -> dict:
    """Global attributes recording how a file was made.

    ``history`` (an earlier file's, or None) gets :func:`history_line` appended as a new
    line, as CF asks, instead of being replaced; ``what`` (what the step did) also makes
    the ``title``.
    """
    line = history_line(what, timestamp=timestamp)
    attrs = {
        "Conventions": "CF-1.8",
        "title": f"gridfuse: {what}" if what else "gridfuse output",
        "gridfuse_version": __version__,
        "config_hash": config_hash(cfg),
        "sources": ", ".join(sources),
        "history": f"{history.rstrip()}\n{line}" if history else line,
    }
    attrs.update({k: _attr_value(v) for k, v in extra.items()})
    return attrs


def _attr_value(v):
    return v if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def _umask() -> int:
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.  The
    temporary is named ``.<name>.gftmp.<random><suffix>`` (so that stale ones of a killed
    process can be found); the renamed file gets the umask's permissions (``mkstemp``
    alone would leave it readable by its owner only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}{TMP_MARKER}", suffix=suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        mode = 0o777 if tmp.is_dir() else 0o666
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def remove_stale_temporaries(root: str | os.PathLike) -> list[Path]:
    """Remove the temporaries (:func:`atomic_path`) that killed jobs left under ``root``.

    Call it only while no job writes under ``root`` (the workflow does at start, holding
    Snakemake's lock on the working directory).  Returns the removed paths.
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder, dirs, files in os.walk(root):
        for name in files + dirs:
            if _TMP_RE.match(name):
                p = Path(folder) / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                removed.append(p)
        dirs[:] = [d for d in dirs if not _TMP_RE.match(d)]
    if removed:
        logger.warning(
            "removed %d temporary file(s) left by interrupted jobs under %s (first: %s)",
            len(removed),
            root,
            removed[0],
        )
    return sorted(removed)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EIO}


@contextlib.contextmanager
def _naming_write_errors(path: Path) -> Iterator[None]:
    """Re-raise the terse errors of a failed NetCDF write (``NetCDF: HDF error``, ENOSPC)
    as an OSError naming the file being written."""
    try:
        yield
    except (RuntimeError, OSError) as err:
        netcdf = isinstance(err, RuntimeError) and "NetCDF:" in str(err)
        system = isinstance(err, OSError) and err.errno in _WRITE_ERRNOS
        if not (netcdf or system) or str(path) in str(err):
            raise
        msg = f"{path}: writing the NetCDF file failed ({err}); disk full, quota or permissions?"
        raise (OSError(err.errno, msg) if system else OSError(msg)) from err


def _chunks(shape: tuple[int, ...], dims: tuple[str, ...]) -> tuple[int, ...]:
    out = []
    for n, d in zip(shape, dims):
        if d == "time":
            out.append(1)
        elif d in ("lat", "lon", "y", "x"):
            out.append(max(1, min(n, 512)))
        else:
            out.append(max(1, n))
    return tuple(out)


# ---------------------------------------------------------------------- CF pieces
@functools.cache
def crs_attrs() -> dict:
    """Attributes of the ``crs`` grid-mapping variable: EPSG:4326 for CF, GDAL and pyproj.

    CF's ``latitude_longitude`` mapping with the WGS 84 ellipsoid, ``crs_wkt`` (CF 1.7+,
    read by rioxarray) and the same WKT as ``spatial_ref`` (read by GDAL's netCDF driver).
    """
    from pyproj import CRS

    crs = CRS.from_epsg(4326)
    attrs = {k: v for k, v in crs.to_cf().items() if k != "geographic_crs_name"}
    attrs["crs_wkt"] = crs.to_wkt()
    attrs["spatial_ref"] = attrs["crs_wkt"]
    attrs["epsg_code"] = "EPSG:4326"
    return {k: _attr_value(v) for k, v in attrs.items()}


def day_bounds(days, utc_start_hour: int) -> np.ndarray:
    """UTC window of each product day, ``(n, 2)`` in days since 1970-01-01.

    Day D runs from hour H (``utc_start_hour``) of D-1 to H of D when H > 0 (e.g. 12: the
    CMA 20:00-20:00 Beijing-time day), and is the UTC day D when H = 0.
    """
    h = int(utc_start_hour)
    if not 0 <= h <= 23:
        raise ValueError(f"utc_start_hour must be 0..23, got {utc_start_hour}")
    d = (pd.DatetimeIndex(days).normalize() - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    start = np.asarray(d, dtype="f8") + (h / 24.0 - 1.0 if h > 0 else 0.0)
    return np.stack([start, start + 1.0], axis=1)


def _day_comment(utc_start_hour: int) -> str:
    return (
        f"product day: the UTC window in time_bnds (the day starts at {int(utc_start_hour):02d}"
        " UTC); the time value is 00:00 UTC of the day's date"
    )


def _is_gridded(var: xr.DataArray) -> bool:
    return "lat" in var.dims and "lon" in var.dims


def cf_dataset(
    ds: xr.Dataset, *, utc_start_hour: int | None = None, drop_cell_methods: bool = False
) -> tuple[xr.Dataset, dict]:
    """The CF form of ``ds`` and its NetCDF encoding (see the module docstring).

    Adds the kind attributes to product variables (unless set), coordinate attributes, the
    ``crs`` grid mapping for gridded variables and, with ``utc_start_hour``, ``time_bnds``.
    """
    # the grid mapping and time bounds of an input file are made anew
    ds = ds.drop_vars([CRS_VARIABLE, "time_bnds", "time_bounds"], errors="ignore").copy()
    for name, var in ds.data_vars.items():
        for k, v in CF_VARIABLES.get(str(name), {}).items():
            var.attrs.setdefault(k, v)
        if drop_cell_methods:
            var.attrs.pop("cell_methods", None)
    for c, sn, axis in (("lat", "latitude", "Y"), ("lon", "longitude", "X")):
        if c in ds.coords:
            ds[c].attrs.setdefault("standard_name", sn)
            ds[c].attrs.setdefault("long_name", sn)
            ds[c].attrs.setdefault("units", f"degrees_{'north' if c == 'lat' else 'east'}")
            ds[c].attrs.setdefault("axis", axis)
    encoding: dict[str, dict] = {}
    if "time" in ds.coords:
        ds["time"].attrs.update(standard_name="time", axis="T")
        ds["time"].attrs.pop("bounds", None)
        encoding["time"] = {
            "units": TIME_UNITS,
            "calendar": CALENDAR,
            "dtype": "float64",
            "_FillValue": None,
        }
        if utc_start_hour is not None and ds.sizes["time"]:
            bnds = day_bounds(ds["time"].values, utc_start_hour)
            # as datetimes, so that xarray encodes them in the units of time (CF: bounds
            # share their coordinate's units and calendar)
            epoch = np.datetime64("1970-01-01T00:00:00", "ns")
            stamps = epoch + np.round(bnds * 86400e9).astype("i8").astype("timedelta64[ns]")
            ds["time_bnds"] = (("time", "nv"), stamps)
            ds["time"].attrs["bounds"] = "time_bnds"
            ds["time"].attrs["comment"] = _day_comment(utc_start_hour)
            encoding["time_bnds"] = {"dtype": "float64", "_FillValue": None}
    gridded = [n for n, v in ds.data_vars.items() if _is_gridded(v)]
    if gridded:
        ds[CRS_VARIABLE] = xr.DataArray(np.int32(0), attrs=crs_attrs())
        encoding[CRS_VARIABLE] = {"_FillValue": None}
        for n in gridded:
            ds[n].attrs["grid_mapping"] = CRS_VARIABLE
    for c in ds.coords:
        if c != "time" and np.issubdtype(ds[c].dtype, np.number):
            encoding.setdefault(str(c), {})["_FillValue"] = None
    return ds, encoding


def write_netcdf(
    ds: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    *,
    cfg: Mapping | None = None,
    sources: Iterable[str] = (),
    complevel: int = 4,
    attrs: Mapping | None = None,
    utc_start_hour: int | None = None,
    what: str = "",
    timestamp: bool = False,
) -> Path:
    """Write a dataset as compressed, time-chunked CF NetCDF4, atomically.

    Float variables are stored as float32 with NaN fill; variables named in
    :data:`CF_VARIABLES` get their CF attributes unless already set.  Pass
    ``utc_start_hour`` (the product's ``day_window``) for a time axis of product days:
    it becomes ``time_bnds``.  The dataset's own ``history`` is appended to (``what`` says
    what this step did); ``timestamp`` adds the wall-clock time to that line.
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "data")
    history = ds.attrs.get("history")
    ds, encoding = cf_dataset(ds, utc_start_hour=utc_start_hour)
    ds.attrs.update(provenance(cfg, sources, history=history, what=what, timestamp=timestamp))
    if attrs:
        ds.attrs.update({k: _attr_value(v) for k, v in attrs.items() if k != "history"})
    for name, var in ds.data_vars.items():
        if name in (CRS_VARIABLE, "time_bnds"):
            continue
        enc: dict = {}
        if var.ndim:
            enc.update(zlib=True, complevel=complevel, chunksizes=_chunks(var.shape, var.dims))
        if np.issubdtype(var.dtype, np.floating):
            enc.update(dtype="float32", _FillValue=np.float32(np.nan))
        encoding[name] = enc
    path = Path(path)
    lazy = _lazy_variables(ds)
    with atomic_path(path, suffix=".nc") as tmp, _naming_write_errors(path):
        if not lazy:
            ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=encoding)
        else:
            eager = ds.drop_vars(lazy)
            enc = {k: v for k, v in encoding.items() if k in eager.variables}
            eager.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=enc)
            _write_lazy_in_order(tmp, ds, lazy, encoding)
    logger.info(
        "wrote %s (%s)", path, ", ".join(f"{k}{tuple(v.shape)}" for k, v in ds.data_vars.items())
    )
    return path


def _lazy_variables(ds: xr.Dataset) -> list[str]:
    """Dask-backed numeric data variables of ``ds`` (written by :func:`_write_lazy_in_order`)."""
    return [
        str(n)
        for n, v in ds.data_vars.items()
        if v.chunks is not None and v.ndim and v.dtype.kind in "fiu"
    ]


def _lazy_units(ds: xr.Dataset, lazy: Sequence[str]) -> list[tuple[list[str], int, int]]:
    """The units ``(names, start, stop)`` in which the dask-backed variables ``lazy`` are
    written, in file order: each block of the first dimension, group by group, where a group
    holds the variables that share dask graph layers (computed together)."""
    groups: list[list[str]] = []
    layers: list[set] = []
    for n in lazy:
        own = set(ds[n].data.__dask_graph__().layers)
        members = [n]
        for i in reversed(range(len(groups))):
            if layers[i] & own:
                members += groups.pop(i)
                own |= layers.pop(i)
        groups.append(sorted(members, key=lazy.index))
        layers.append(own)
    groups.sort(key=lambda g: lazy.index(g[0]))
    firsts = {ds[n].dims[0] for n in lazy}
    bounds = {ds[n].chunks[0] for n in lazy}
    units: list[tuple[list[str], int, int]] = []
    if len(firsts) == 1 and len(bounds) == 1:
        edges = np.cumsum((0, *next(iter(bounds)))).tolist()
        for start, stop in zip(edges[:-1], edges[1:]):
            units += [(g, start, stop) for g in groups]
    else:
        for n in lazy:
            edges = np.cumsum((0, *ds[n].chunks[0])).tolist()
            units += [([n], start, stop) for start, stop in zip(edges[:-1], edges[1:])]
    return units


def _create_lazy_variables(nc, ds: xr.Dataset, lazy: Sequence[str], encoding) -> None:
    """Define the variables ``lazy`` of ``ds`` (dimensions, encoding, attributes) in the open
    netCDF4 dataset ``nc``, without their values."""
    for n in lazy:
        var = ds[n]
        for dim, size in zip(var.dims, var.shape):
            if dim not in nc.dimensions:
                nc.createDimension(dim, size)
        enc = encoding.get(n, {})
        out = nc.createVariable(
            n,
            np.dtype(enc.get("dtype", var.dtype)),
            var.dims,
            zlib=bool(enc.get("zlib", False)),
            complevel=int(enc.get("complevel", 4)),
            shuffle=bool(enc.get("zlib", False)),
            chunksizes=enc.get("chunksizes"),
            fill_value=enc.get("_FillValue"),
        )
        out.set_auto_maskandscale(False)
        attrs = {k: v for k, v in var.attrs.items() if k != "_FillValue"}
        extra = [str(c) for c in var.coords if c not in var.dims]
        if extra:
            attrs["coordinates"] = " ".join(extra)
        out.setncatts(attrs)


def _write_lazy_in_order(tmp: Path, ds: xr.Dataset, lazy: Sequence[str], encoding) -> None:
    """Add the dask-backed variables ``lazy`` of ``ds`` to the NetCDF file ``tmp``, block by
    block of their first dimension, always in the same order.

    xarray's dask store writes the chunks in the order the threads finish them, and HDF5
    places its chunk indexes and chunks in the order they arrive, so the same data gave files
    that differ in their bytes.  Here the file is written in one fixed order, block after
    block, variable after variable (variables that share dask layers, ``wd`` computed from
    ``u10``/``v10``, as one unit), while the next units are computed by ``num_workers - 1``
    other threads (dask's setting).  Memory: one unit per worker.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import dask
    import netCDF4
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    units = _lazy_units(ds, lazy)
    # while one unit is written, the next `workers - 1` are computed by other threads
    serial = dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded")
    workers = 1 if serial else dask.config.get("num_workers", None) or dask.system.CPU_COUNT
    ahead = max(1, int(workers)) - 1

    def compute(unit):
        names, start, stop = unit
        with dask.config.set(scheduler="synchronous"):
            return dask.compute(*[ds[n].data[start:stop] for n in names])

    with netCDF4.Dataset(tmp, "a") as nc:
        _create_lazy_variables(nc, ds, lazy, encoding)

        def write(unit, future):
            names, start, stop = unit
            values = future.result() if future is not None else compute(unit)
            with NETCDF4_PYTHON_LOCK:  # the lock xarray's readers of the inputs hold
                for n, v in zip(names, values):
                    nc[n][start:stop] = np.asarray(v).astype(nc[n].dtype, copy=False)

        with ThreadPoolExecutor(max_workers=max(ahead, 1)) as pool:
            pending: deque = deque()
            for unit in units:
                pending.append((unit, pool.submit(compute, unit) if ahead else None))
                while len(pending) > ahead:
                    write(*pending.popleft())
            while pending:
                write(*pending.popleft())


def write_netcdf_blocks(
    path: str | os.PathLike,
    name: str,
    blocks: Iterable[tuple],
    *,
    times,
    lat: np.ndarray,
    lon: np.ndarray,
    cfg: Mapping | None = None,
    sources: Iterable[str] = (),
    complevel: int = 4,
    attrs: Mapping | None = None,
    utc_start_hour: int | None = None,
    flag_sources: Sequence[str] | None = None,
    what: str = "",
    timestamp: bool = False,
) -> Path:
    """Write a ``(time, lat, lon)`` variable block by block, atomically, as CF NetCDF4.

    The file is laid out as :func:`write_netcdf` lays it out (float32, NaN fill, zlib,
    one-day chunks, CF attributes of :data:`CF_VARIABLES`, ``crs`` grid mapping,
    ``time_bnds`` with ``utc_start_hour``, provenance), but only one block is in memory at a
    time: ``blocks`` yields ``(time slice, array (days, lat, lon))``.  With
    ``flag_sources`` the file also holds the quality layer
    :data:`gridfuse.quality.QUALITY_VARIABLE` (bit i = ``flag_sources[i]`` had data) and
    ``blocks`` yields ``(time slice, values, flags)``, flags from
    :func:`gridfuse.quality.source_flags`.  Every day must be written once; a day left
    unwritten is an error.
    """
    import netCDF4

    from .quality import QUALITY_VARIABLE, flag_attrs

    times = np.asarray(times, dtype="datetime64[ns]")
    lat = np.asarray(lat, dtype="f8")
    lon = np.asarray(lon, dtype="f8")
    shape = (times.size, lat.size, lon.size)
    written = np.zeros(times.size, dtype=bool)
    fattrs = flag_attrs(flag_sources, name) if flag_sources is not None else None
    path = Path(path)
    with atomic_path(path, suffix=".nc") as tmp:
        with _naming_write_errors(path), netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            qvar, var = _create_blocks_file(
                nc, name, times, lat, lon, complevel, utc_start_hour, fattrs, QUALITY_VARIABLE
            )
            glob = provenance(cfg, sources, what=what, timestamp=timestamp)
            if attrs:
                glob.update({k: _attr_value(v) for k, v in attrs.items() if k != "history"})
            nc.setncatts(glob)
            for item in blocks:
                ts, block = item[0], np.asarray(item[1], dtype="f4")
                n = len(range(*ts.indices(times.size)))
                want = (n, lat.size, lon.size)
                if block.shape != want:
                    raise ValueError(
                        f"{path}: block for days {ts.start}..{ts.stop} of {name} has shape "
                        f"{block.shape}; expected {want}"
                    )
                if qvar is not None:
                    flags = np.asarray(item[2]) if len(item) > 2 else None
                    if flags is None or flags.shape != want:
                        raise ValueError(
                            f"{path}: flag_sources {list(flag_sources)} given, but the flags "
                            f"for days {ts.start}..{ts.stop} have shape "
                            f"{None if flags is None else flags.shape}; expected {want}"
                        )
                    qvar[ts] = flags.astype(qvar.dtype)
                var[ts] = block
                written[ts] = True
        if not written.all():
            raise ValueError(
                f"{path}: {int((~written).sum())} of {times.size} days of {name} were never "
                f"written (first: {times[~written][0]})"
            )
    logger.info("wrote %s (%s%s, streamed)", path, name, shape)
    return path


def _create_blocks_file(nc, name, times, lat, lon, complevel, utc_start_hour, fattrs, qname):
    """Dimensions, coordinates, ``crs``, ``time_bnds`` and the (empty) variables of a
    :func:`write_netcdf_blocks` file; returns ``(quality variable or None, variable)``."""
    shape = (times.size, lat.size, lon.size)
    for dim, n in zip(("time", "lat", "lon"), shape):
        nc.createDimension(dim, n)
    t = nc.createVariable("time", "f8", ("time",))
    t.setncatts({"units": TIME_UNITS, "calendar": CALENDAR, "standard_name": "time", "axis": "T"})
    t[:] = (times - np.datetime64("1970-01-01")) / np.timedelta64(1, "D")
    if utc_start_hour is not None and times.size:
        nc.createDimension("nv", 2)
        tb = nc.createVariable("time_bnds", "f8", ("time", "nv"))
        tb[:] = day_bounds(times, utc_start_hour)
        t.setncatts({"bounds": "time_bnds", "comment": _day_comment(utc_start_hour)})
    for c, values, sn, axis in (("lat", lat, "latitude", "Y"), ("lon", lon, "longitude", "X")):
        v = nc.createVariable(c, "f8", (c,))
        units = f"degrees_{'north' if c == 'lat' else 'east'}"
        v.setncatts({"units": units, "standard_name": sn, "long_name": sn, "axis": axis})
        v[:] = values
    crs = nc.createVariable(CRS_VARIABLE, "i4", ())
    crs.setncatts(crs_attrs())
    crs.assignValue(0)
    chunks = _chunks(shape, ("time", "lat", "lon"))
    var = nc.createVariable(
        name,
        "f4",
        ("time", "lat", "lon"),
        zlib=True,
        complevel=complevel,
        chunksizes=chunks,
        fill_value=np.float32(np.nan),
    )
    var.setncatts({**CF_VARIABLES.get(name, {}), "grid_mapping": CRS_VARIABLE})
    if fattrs is None:
        return None, var
    q = nc.createVariable(
        qname,
        fattrs["flag_masks"].dtype,
        ("time", "lat", "lon"),
        zlib=True,
        complevel=complevel,
        chunksizes=chunks,
    )
    q.setncatts({**fattrs, "grid_mapping": CRS_VARIABLE})
    var.setncattr("ancillary_variables", qname)
    return q, var


def read_netcdf(path: str | os.PathLike, *, load: bool = False, **kwargs) -> xr.Dataset:
    """Open a gridfuse NetCDF file; errors name the file.

    ``crs`` and ``time_bnds`` come back as coordinates, so ``data_vars`` holds the data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", **kwargs)
    except Exception as err:  # netCDF4 raises OSError/RuntimeError with terse messages
        raise OSError(f"{path}: cannot be read as NetCDF ({err})") from err
    # the grid mapping and the time bounds describe the data; they are not data
    aux = [v for v in (CRS_VARIABLE, "time_bnds") if v in ds.data_vars]
    if aux:
        ds = ds.set_coords(aux)
    return ds.load() if load else ds


def values_at_cells(
    path: str | os.PathLike,
    variable: str,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    time_block: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Values of a ``(time, lat, lon)`` variable at grid cells, without reading the grid.

    Only ``variable`` is read, and of it only the storage chunks (see :func:`write_netcdf`)
    holding one of the cells, ``time_block`` days at a time: a product year at a province's
    gauges decompresses the chunks around them instead of loading every variable of the
    whole grid (the cost model prices it as ``k:product_read_s_per_cell_day``).

    Returns ``(times (datetime64[ns]), values (time, cell) float32)``.
    """
    import netCDF4

    path = Path(path)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError(f"{path}: rows and cols must be 1-D and of one length")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with read_netcdf(path) as ds:  # the time axis decoded as everywhere else
        if variable not in ds.data_vars:
            raise KeyError(f"{path}: no variable {variable!r} (has {sorted(ds.data_vars)})")
        if ds[variable].dims != ("time", "lat", "lon"):
            raise ValueError(
                f"{path}: {variable} has dims {ds[variable].dims}; expected (time, lat, lon)"
            )
        times = np.asarray(ds["time"].values, dtype="datetime64[ns]")
        ny, nx = ds.sizes["lat"], ds.sizes["lon"]
    if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= ny or cols.max() >= nx):
        raise ValueError(f"{path}: cells outside its {ny} x {nx} grid")
    out = np.full((times.size, rows.size), np.nan, dtype=np.float32)
    with netCDF4.Dataset(path) as nc:
        var = nc.variables[variable]
        chunking = var.chunking()
        ch_r, ch_c = (ny, nx) if chunking == "contiguous" else (chunking[1], chunking[2])
        # the cells grouped by storage chunk; each group is one hyperslab read per block
        groups: dict[tuple[int, int], np.ndarray] = {}
        for i, key in enumerate(zip(rows // ch_r, cols // ch_c)):
            groups.setdefault(key, []).append(i)
        for a in range(0, times.size, time_block):
            b = min(a + time_block, times.size)
            for (gr, gc), idx in groups.items():
                idx = np.asarray(idx)
                r0, c0 = gr * ch_r, gc * ch_c
                slab = var[a:b, r0 : min(r0 + ch_r, ny), c0 : min(c0 + ch_c, nx)]
                slab = np.ma.filled(np.ma.asarray(slab, dtype=np.float32), np.nan)
                out[a:b, idx] = slab[:, rows[idx] - r0, cols[idx] - c0]
    return times, out


def write_absent(path: str | os.PathLike, *, source: str, year: int, reason: str) -> Path:
    """Write the explicit "absent" marker for a source-year the source does not cover."""
    ds = xr.Dataset(
        attrs={"gridfuse_absent": 1, "source": source, "year": int(year), "reason": reason}
    )
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4")
    logger.info("%s %s: absent (%s)", source, year, reason)
    return Path(path)


def is_absent(path_or_ds: str | os.PathLike | xr.Dataset) -> bool:
    """True for a file (or dataset) written by :func:`write_absent`."""
    if isinstance(path_or_ds, xr.Dataset):
        return bool(path_or_ds.attrs.get("gridfuse_absent", 0))
    with xr.open_dataset(path_or_ds, engine="netcdf4") as ds:
        return bool(ds.attrs.get("gridfuse_absent", 0))


# ---------------------------------------------------------------------- GeoTIFF
def write_geotiff(
    data: np.ndarray | xr.DataArray,
    path: str | os.PathLike,
    *,
    grid: Grid | None = None,
    nodata: float = -9999.0,
    gz: bool = False,
    tags: Mapping | None = None,
    blocksize: int = 512,
) -> Path:
    """Write a 2-D ``(lat, lon)`` north-up array as a cloud-optimized GeoTIFF.

    Deflate-compressed float32 with ``nodata`` replacing NaN.  With ``gz`` the result
    is gzipped and ``.gz`` is appended to ``path`` (as in the SO2 record); GDAL reads
    it through ``/vsigzip/``.  Returns the path written.
    """
    import rasterio

    if isinstance(data, xr.DataArray):
        if grid is None:
            grid = Grid.from_coords(data["lat"].values, data["lon"].values)
        if data["lat"].values[0] < data["lat"].values[-1]:
            data = data.isel(lat=slice(None, None, -1))
        arr = np.asarray(data.values)
    else:
        arr = np.asarray(data)
    if grid is None:
        raise ValueError("write_geotiff needs a grid for a plain array")
    if arr.shape != grid.shape:
        raise ValueError(f"{path}: array shape {arr.shape} does not match grid {grid.shape}")
    arr = np.where(np.isfinite(arr), arr, nodata).astype("float32")
    path = Path(path)
    final = path.with_name(path.name + ".gz") if gz and path.suffix != ".gz" else path
    profile = {
        "driver": "COG",
        "height": grid.nlat,
        "width": grid.nlon,
        "count": 1,
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "DEFLATE",
        "predictor": 2,
        "blocksize": blocksize,
        "overviews": "AUTO" if min(grid.shape) > 2 * blocksize else "NONE",
    }
    with atomic_path(final, suffix=".tif") as tmp:
        tif = tmp if not gz else tmp.with_name(tmp.name + ".inner.tif")
        try:
            with rasterio.open(tif, "w", **profile) as dst:
                dst.write(arr, 1)
                tags = {"gridfuse_version": __version__, **(tags or {})}
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            if gz:
                gzip_file(tif, tmp)
        finally:
            if gz:
                with contextlib.suppress(FileNotFoundError):
                    tif.unlink()
    return final


def gzip_file(src: str | os.PathLike, dst: str | os.PathLike, compresslevel: int = 6) -> Path:
    """Gzip ``src`` into ``dst`` with a reproducible header: no file name, time 0.

    (``gzip.open`` records the output's name and the current time, so the same raster
    gzipped twice would differ in its bytes.)
    """
    with open(src, "rb") as fin, open(dst, "wb") as raw:
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
        ) as out:
            shutil.copyfileobj(fin, out)
    return Path(dst)


def save_npz(file, compress: bool = True, **arrays) -> None:
    """:func:`numpy.savez_compressed` with reproducible bytes.

    NumPy stamps each member of the zip archive with the current time, so the same arrays
    saved twice differ; here every member gets the zip epoch (1980-01-01).  ``file`` is a
    path or a binary file object; :func:`numpy.load` reads the result.
    """
    import zipfile

    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(file, "w", compression=mode) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = mode
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def read_geotiff(path: str | os.PathLike) -> xr.DataArray:
    """Read a single-band GeoTIFF (optionally ``.gz``) as a ``(lat, lon)`` DataArray, NaN for nodata."""
    import rasterio

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    uri = f"/vsigzip/{path}" if path.suffix == ".gz" else str(path)
    try:
        with rasterio.open(uri) as src:
            arr = src.read(1).astype("float32")
            if src.nodata is not None:
                arr[arr == src.nodata] = np.nan
            t = src.transform
            if t.b != 0 or t.d != 0 or t.e >= 0:
                raise ValueError(f"{path}: not a north-up, unrotated raster (transform {t})")
            grid = Grid(t.c, t.f + t.e * src.height, t.c + t.a * src.width, t.f, t.a)
            tags = src.tags()
    except rasterio.errors.RasterioIOError as err:
        raise OSError(f"{path}: cannot be read as GeoTIFF ({err})") from err
    return xr.DataArray(arr, dims=("lat", "lon"), coords=grid.coords(), attrs=tags)
