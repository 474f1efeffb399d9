"""Atomic readers and writers for CF NetCDF4 and (cloud-optimized) GeoTIFF.

Every writer writes to a temporary name in the destination folder and renames it into
place, so a killed job never leaves a file that looks complete.  NetCDF files carry CF
metadata and provenance attributes (``gridfuse_version``, ``config_hash``, ``sources``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__
from .grid import Grid

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_path",
    "config_hash",
    "provenance",
    "write_netcdf",
    "write_netcdf_blocks",
    "read_netcdf",
    "write_absent",
    "is_absent",
    "write_geotiff",
    "read_geotiff",
    "CF_VARIABLES",
]

# CF metadata for the variables gridfuse writes (name -> attrs).
CF_VARIABLES: dict[str, dict[str, str]] = {
    "precip": {
        "units": "mm day-1",
        "standard_name": "lwe_precipitation_rate",
        "long_name": "daily precipitation total",
        "cell_methods": "time: sum",
    },
    "so2": {
        "units": "ug m-3",
        "standard_name": "mass_concentration_of_sulfur_dioxide_in_air",
        "long_name": "daily mean surface SO2 concentration (298 K reference state)",
        "cell_methods": "time: mean",
    },
}


def config_hash(cfg: Mapping | None) -> str:
    """Short, stable hash of a (JSON-serializable) configuration mapping."""
    blob = json.dumps(cfg or {}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def provenance(cfg: Mapping | None = None, sources: Iterable[str] = (), **extra) -> dict:
    """Global attributes recording how a file was made."""
    attrs = {
        "Conventions": "CF-1.8",
        "gridfuse_version": __version__,
        "config_hash": config_hash(cfg),
        "sources": ", ".join(sources),
        "history": f"{_dt.datetime.now(_dt.UTC):%Y-%m-%dT%H:%M:%SZ} created by gridfuse {__version__}",
    }
    attrs.update({k: (v if isinstance(v, (int, float)) else str(v)) for k, v in extra.items()})
    return attrs


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


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


def write_netcdf(
    ds: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    *,
    cfg: Mapping | None = None,
    sources: Iterable[str] = (),
    complevel: int = 4,
    attrs: Mapping | None = None,
) -> Path:
    """Write a dataset as compressed, time-chunked CF NetCDF4, atomically.

    Float variables are stored as float32 with NaN fill; variables named in
    :data:`CF_VARIABLES` get their CF attributes unless already set.
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "data")
    ds = ds.copy()
    for name, var in ds.data_vars.items():
        for k, v in CF_VARIABLES.get(str(name), {}).items():
            var.attrs.setdefault(k, v)
    if "time" in ds.coords:
        ds["time"].attrs.setdefault("standard_name", "time")
    for c, sn in (("lat", "latitude"), ("lon", "longitude")):
        if c in ds.coords:
            ds[c].attrs.setdefault("standard_name", sn)
            ds[c].attrs.setdefault("units", f"degrees_{'north' if c == 'lat' else 'east'}")
    ds.attrs.update(provenance(cfg, sources))
    if attrs:
        ds.attrs.update(
            {k: (v if isinstance(v, (int, float)) else str(v)) for k, v in attrs.items()}
        )
    encoding = {}
    for name, var in ds.data_vars.items():
        enc: dict = {}
        if var.ndim:
            enc.update(zlib=True, complevel=complevel, chunksizes=_chunks(var.shape, var.dims))
        if np.issubdtype(var.dtype, np.floating):
            enc.update(dtype="float32", _FillValue=np.float32(np.nan))
        encoding[name] = enc
    if "time" in ds.coords:
        encoding["time"] = {
            "units": "days since 1970-01-01",
            "calendar": "proleptic_gregorian",
            "dtype": "float64",
        }
    path = Path(path)
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=encoding)
    logger.info(
        "wrote %s (%s)", path, ", ".join(f"{k}{tuple(v.shape)}" for k, v in ds.data_vars.items())
    )
    return path


def write_netcdf_blocks(
    path: str | os.PathLike,
    name: str,
    blocks: Iterable[tuple[slice, np.ndarray]],
    *,
    times,
    lat: np.ndarray,
    lon: np.ndarray,
    cfg: Mapping | None = None,
    sources: Iterable[str] = (),
    complevel: int = 4,
    attrs: Mapping | None = None,
) -> Path:
    """Write a ``(time, lat, lon)`` variable block by block, atomically, as CF NetCDF4.

    The file is laid out as :func:`write_netcdf` lays it out (float32, NaN fill, zlib,
    one-day chunks, CF attributes of :data:`CF_VARIABLES`, provenance), but only one block
    is in memory at a time: ``blocks`` yields ``(time slice, array (days, lat, lon))``.
    Every day must be written once; a day left unwritten is an error.
    """
    import netCDF4

    times = np.asarray(times, dtype="datetime64[ns]")
    lat = np.asarray(lat, dtype="f8")
    lon = np.asarray(lon, dtype="f8")
    shape = (times.size, lat.size, lon.size)
    written = np.zeros(times.size, dtype=bool)
    path = Path(path)
    with atomic_path(path, suffix=".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            for dim, n in zip(("time", "lat", "lon"), shape):
                nc.createDimension(dim, n)
            t = nc.createVariable("time", "f8", ("time",))
            t.setncatts(
                {
                    "units": "days since 1970-01-01",
                    "calendar": "proleptic_gregorian",
                    "standard_name": "time",
                    "axis": "T",
                }
            )
            t[:] = (times - np.datetime64("1970-01-01")) / np.timedelta64(1, "D")
            for c, values, sn, axis in (
                ("lat", lat, "latitude", "Y"),
                ("lon", lon, "longitude", "X"),
            ):
                v = nc.createVariable(c, "f8", (c,))
                units = f"degrees_{'north' if c == 'lat' else 'east'}"
                v.setncatts({"units": units, "standard_name": sn, "long_name": sn, "axis": axis})
                v[:] = values
            var = nc.createVariable(
                name,
                "f4",
                ("time", "lat", "lon"),
                zlib=True,
                complevel=complevel,
                chunksizes=_chunks(shape, ("time", "lat", "lon")),
                fill_value=np.float32(np.nan),
            )
            var.setncatts(CF_VARIABLES.get(name, {}))
            glob = provenance(cfg, sources)
            if attrs:
                glob.update(
                    {k: (v if isinstance(v, (int, float)) else str(v)) for k, v in attrs.items()}
                )
            nc.setncatts(glob)
            for ts, block in blocks:
                block = np.asarray(block, dtype="f4")
                n = len(range(*ts.indices(times.size)))
                if block.shape != (n, lat.size, lon.size):
                    raise ValueError(
                        f"{path}: block for days {ts.start}..{ts.stop} of {name} has shape "
                        f"{block.shape}; expected {(n, lat.size, lon.size)}"
                    )
                var[ts] = block
                written[ts] = True
        if not written.all():
            raise ValueError(
                f"{path}: {int((~written).sum())} of {times.size} days of {name} were never "
                f"written (first: {times[~written][0]})"
            )
    logger.info("wrote %s (%s%s, streamed)", path, name, shape)
    return path


def read_netcdf(path: str | os.PathLike, *, load: bool = False, **kwargs) -> xr.Dataset:
    """Open a gridfuse NetCDF file; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", **kwargs)
    except Exception as err:  # netCDF4 raises OSError/RuntimeError with terse messages
        raise OSError(f"{path}: cannot be read as NetCDF ({err})") from err
    return ds.load() if load else ds


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
                with open(tif, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as out:
                    shutil.copyfileobj(src, out)
        finally:
            if gz:
                with contextlib.suppress(FileNotFoundError):
                    tif.unlink()
    return final


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
