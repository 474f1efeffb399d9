"""Static predictor layers on the target grid: elevation and slope, land cover, NDVI,
population and road density.

Each layer is read from a GeoTIFF (optionally ``.gz``) or NetCDF file with GDAL (rasterio) and
warped onto the target grid with ``rasterio.warp.reproject``; static layers are one-off, so
GDAL's reprojection (any source CRS, exact pixel-overlap weights) is the right tool.  How a
layer is resampled follows from what it measures:

``continuous`` (elevation, slope, NDVI)
    area-weighted ``average`` when the source is finer than the target, ``bilinear`` otherwise;
``categorical`` (land cover)
    ``mode`` (the majority class) when the source is finer, ``nearest`` otherwise;
``count`` (population as persons per source pixel, e.g. WorldPop/LandScan)
    divided by each source pixel's area first, then treated as a density: the
    overlap-weighted mean of the densities equals the cell's summed count divided by its area
    (sum-then-density), up to the variation of cos(latitude) inside one target cell;
``density`` (road length per area, persons per km2)
    as ``continuous``.

Slope (degrees) is computed on the DEM's own grid with centred differences (metres per degree
from the WGS84 radius of curvature approximations) and then averaged onto the target grid, so a
fine DEM gives the mean slope of each cell rather than the slope of the mean surface.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from .grid import Grid
from .kinds import KINDS

logger = logging.getLogger(__name__)

__all__ = ["LAYERS", "KIND_LAYERS", "read_layer", "warp", "slope_degrees", "build_static"]

# layer key -> (output variable, default quantity, units, long name)
LAYERS: dict[str, tuple[str, str, str, str]] = {
    "dem": ("elevation", "continuous", "m", "surface elevation above sea level"),
    "landcover": ("landcover", "categorical", "1", "land cover class"),
    "ndvi": ("ndvi", "continuous", "1", "normalized difference vegetation index"),
    "population": ("population", "count", "km-2", "population density (persons per km2)"),
    "road_density": ("road_density", "density", "km km-2", "road length per area"),
}
# layers a product kind uses (the synthetic demo writes exactly these): from the kind spec
KIND_LAYERS = {name: spec.static_layers for name, spec in KINDS.items()}
QUANTITIES = ("continuous", "categorical", "count", "density")
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0


class _Raster:
    """A 2-D array with its affine transform and CRS (NaN for nodata)."""

    def __init__(self, data, transform, crs, path):
        self.data, self.transform, self.crs, self.path = data, transform, crs, path

    @property
    def geographic(self) -> bool:
        return self.crs is None or self.crs.is_geographic

    def pixel_size_deg(self) -> float:
        """Approximate pixel size in degrees (projected CRS: metres / 111 km)."""
        size = (abs(self.transform.a) + abs(self.transform.e)) / 2
        return size if self.geographic else size / _M_PER_DEG_LON

    def pixel_area_km2(self) -> np.ndarray:
        """Area of each pixel (km2), shape ``(nrow, 1)`` or scalar for projected CRSs."""
        t = self.transform
        if not self.geographic:
            return np.float64(abs(t.a * t.e) / 1e6)
        rows = np.arange(self.data.shape[0]) + 0.5
        lat = t.f + t.e * rows
        return (
            abs(t.a) * _M_PER_DEG_LON * np.cos(np.deg2rad(lat)) * abs(t.e) * _M_PER_DEG_LAT / 1e6
        )[:, None]


def read_layer(path: str | os.PathLike, variable: str = "", scale: float = 1.0) -> _Raster:
    """Read band 1 of a GeoTIFF (``.tif``, ``.tif.gz``) or a NetCDF variable as float64.

    Nodata values become NaN; values are multiplied by ``scale`` (e.g. 0.0001 for MODIS
    NDVI).  Errors name the file.
    """
    import rasterio
    from rasterio.crs import CRS

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: static layer file not found")
    if path.suffix == ".nc":
        if not variable:
            with xr.open_dataset(path) as ds:
                names = [v for v in ds.data_vars if ds[v].ndim == 2]
            if len(names) != 1:
                raise ValueError(
                    f"{path}: set the layer's 'variable' (2-D variables found: {names})"
                )
            variable = names[0]
        uri = f'netcdf:"{path}":{variable}'
    elif path.suffix == ".gz":
        uri = f"/vsigzip/{path}"
    else:
        uri = str(path)
    try:
        with rasterio.open(uri) as src:
            data = src.read(1).astype("f8")
            if src.nodata is not None:
                data[data == src.nodata] = np.nan
            transform, crs = src.transform, src.crs
    except rasterio.errors.RasterioIOError as err:
        raise OSError(f"{path}: cannot be read as a raster layer ({err})") from err
    if transform.b != 0 or transform.d != 0:
        raise ValueError(f"{path}: rotated rasters are not supported (transform {transform})")
    if transform.e > 0:  # south-up (e.g. NetCDF with ascending latitude): flip to north-up
        from affine import Affine

        data = data[::-1]
        transform = Affine(
            transform.a, 0, transform.c, 0, -transform.e, transform.f + transform.e * data.shape[0]
        )
    if crs is None:
        crs = CRS.from_epsg(4326)
        logger.info("%s: no CRS, assuming EPSG:4326", path)
    return _Raster(data * scale, transform, crs, path)


def warp(raster: _Raster, grid: Grid, quantity: str) -> np.ndarray:
    """Resample a layer onto ``grid`` according to its ``quantity`` (module docstring)."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    if quantity not in QUANTITIES:
        raise ValueError(f"{raster.path}: quantity must be one of {QUANTITIES}, got {quantity!r}")
    finer = raster.pixel_size_deg() < grid.res * (1 - 1e-6)
    data = raster.data
    if quantity == "count":
        data = data / raster.pixel_area_km2()
    if quantity == "categorical":
        method = Resampling.mode if finer else Resampling.nearest
    else:
        method = Resampling.average if finer else Resampling.bilinear
    out = np.full(grid.shape, np.nan, dtype="f8")
    reproject(
        source=np.ascontiguousarray(data),
        destination=out,
        src_transform=raster.transform,
        src_crs=raster.crs,
        src_nodata=np.nan,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=method,
    )
    logger.info(
        "%s -> %s: %s (%s), NaN %.2f%%",
        raster.path.name,
        grid.describe(),
        method.name,
        quantity,
        100 * float(np.isnan(out).mean()),
    )
    return out


def slope_degrees(elev: np.ndarray, transform, geographic: bool = True) -> np.ndarray:
    """Slope (degrees) of a north-up elevation raster by centred differences.

    For geographic rasters the pixel sizes in metres are ``res * 111320 cos(lat)`` (x) and
    ``res * 110574`` (y); for projected ones the transform's units (metres).
    """
    elev = np.asarray(elev, dtype="f8")
    dy = abs(transform.e)
    dx = abs(transform.a)
    if geographic:
        lat = transform.f + transform.e * (np.arange(elev.shape[0]) + 0.5)
        dx_m = (dx * _M_PER_DEG_LON * np.cos(np.deg2rad(lat)))[:, None]
        dy_m = dy * _M_PER_DEG_LAT
    else:
        dx_m, dy_m = dx, dy
    if min(elev.shape) < 2:
        return np.zeros_like(elev)
    gy, gx = np.gradient(elev)
    return np.degrees(np.arctan(np.hypot(gx / dx_m, gy / dy_m)))


def build_static(layers: Mapping[str, Mapping | str], grid: Grid) -> xr.Dataset:
    """Warp the configured static layers onto ``grid``.

    Parameters
    ----------
    layers : mapping
        Layer key (``dem``, ``landcover``, ``ndvi``, ``population``, ``road_density``) to a path,
        or to a mapping with ``path`` and optional ``variable`` (NetCDF), ``scale`` and
        ``quantity`` (``continuous, categorical, count, density``; default per layer, see
        :data:`LAYERS`).  Layers with an empty path are skipped; ``dem`` is required.
    grid : Grid
        Target grid.

    Returns
    -------
    xarray.Dataset
        ``elevation`` (m) and ``slope`` (degrees) plus one variable per other layer, on
        ``(lat, lon)`` with latitude descending.
    """
    specs = {
        k: ({"path": v} if isinstance(v, (str, os.PathLike)) else dict(v))
        for k, v in layers.items()
    }
    unknown = sorted(set(specs) - set(LAYERS))
    if unknown:
        raise ValueError(f"unknown static layer(s) {unknown}; known: {sorted(LAYERS)}")
    if not specs.get("dem", {}).get("path"):
        raise ValueError("static layers: a 'dem' path is required (elevation is always built)")
    coords = grid.coords()
    out: dict[str, xr.DataArray] = {}
    for key, spec in specs.items():
        if not spec.get("path"):
            logger.info("static layer %s: no path configured, skipped", key)
            continue
        name, default_q, units, long_name = LAYERS[key]
        quantity = spec.get("quantity") or default_q
        raster = read_layer(spec["path"], spec.get("variable", ""), float(spec.get("scale", 1.0)))
        values = warp(raster, grid, quantity)
        attrs = {"units": units, "long_name": long_name, "source_file": str(raster.path)}
        if quantity == "categorical":
            attrs["units"] = "1"
            attrs["comment"] = "class codes of the source product (majority/nearest resampled)"
        out[name] = xr.DataArray(
            values.astype("f4"), dims=("lat", "lon"), coords=coords, attrs=attrs
        )
        if key == "dem":
            slope = slope_degrees(raster.data, raster.transform, raster.geographic)
            sl = warp(_Raster(slope, raster.transform, raster.crs, raster.path), grid, "continuous")
            out["slope"] = xr.DataArray(
                sl.astype("f4"),
                dims=("lat", "lon"),
                coords=coords,
                attrs={"units": "degree", "long_name": "terrain slope (mean over the cell)"},
            )
    order = ["elevation", "slope"] + [LAYERS[k][0] for k in LAYERS if k != "dem"]
    ds = xr.Dataset({k: out[k] for k in order if k in out})
    ds["elevation"].attrs["standard_name"] = "surface_altitude"
    return ds
