"""Domain masks: which cells of the product grid belong to the product's domain.

A product may name a mask (config key ``products.<name>.mask``). Cells outside it are never
predicted, are nodata in every output (NaN in NetCDF, the nodata value in GeoTIFF) and are
left out of the grid scores. The mask comes from one of:

- a **vector file** that GDAL reads (GeoJSON, GeoPackage, shapefile, ...), read with pyogrio:
  optionally one ``layer`` and an attribute filter ``where`` (an OGR SQL ``WHERE`` clause,
  e.g. ``"NAME_1 = 'Qinghai'"``); polygons in another CRS are reprojected to EPSG:4326 by
  GDAL (:func:`rasterio.warp.transform_geom`);
- a **raster file** (GeoTIFF, NetCDF, ...): warped onto the grid by nearest neighbour, i.e.
  each cell takes the source pixel under its centre; the cell is inside when that value is
  one of ``values`` (or, with no ``values``, any valid non-zero value);
- **inline geometry** in the config: a ``box`` ``[west, south, east, north]`` or a
  ``polygon`` ring ``[[lon, lat], ...]`` (degrees).

Vector geometries are rasterized with :func:`rasterio.features.rasterize` under one of two
rules (``rule``):

``centre`` (default)
    a cell is inside when its centre lies inside a polygon (GDAL's default rule): the mask
    has the polygon's area, up to half a cell at the boundary either way;
``all_touched``
    every cell the polygon touches is inside: nothing of the domain is lost at the
    boundary, at the price of cells mostly outside it (across a border or coastline).

The mask is stored once per product as ``mask.nc`` (``mask``: 1 inside, 0 outside) and read
back as a boolean ``(lat, lon)`` array, north-up like every field of the grid.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from .grid import Grid

logger = logging.getLogger(__name__)

__all__ = [
    "RULES",
    "RASTER_SUFFIXES",
    "geometry_from_config",
    "read_vector",
    "rasterize",
    "raster_mask",
    "build_mask",
    "write_mask",
    "read_mask",
    "points_inside",
]

RULES = ("centre", "all_touched")
#: File suffixes read as rasters (everything else is read as a vector file).
RASTER_SUFFIXES = (".tif", ".tiff", ".nc", ".img", ".vrt", ".asc", ".bil", ".hdf", ".h5")


def geometry_from_config(value, key: str = "geometry") -> dict:
    """A GeoJSON-like polygon from a box ``[w, s, e, n]`` or a ring ``[[lon, lat], ...]``.

    Raises ``ValueError`` naming ``key`` when ``value`` is neither.
    """
    v = list(value or [])
    if len(v) == 4 and all(isinstance(x, (int, float)) for x in v):
        w, s, e, n = map(float, v)
        if not (w < e and s < n):
            raise ValueError(
                f"{key}: a box is [west, south, east, north] with west < east and "
                f"south < north; found {v}"
            )
        ring = [(w, s), (e, s), (e, n), (w, n), (w, s)]
        return {"type": "Polygon", "coordinates": [ring]}
    try:
        ring = [(float(p[0]), float(p[1])) for p in v]
    except (TypeError, ValueError, IndexError):
        ring = []
    if len(ring) < 3 or any(len(p) != 2 for p in v):
        raise ValueError(
            f"{key}: expected a box [west, south, east, north] or a polygon ring of at "
            f"least 3 [lon, lat] points; found {value!r}"
        )
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def read_vector(
    path: str | os.PathLike, *, layer: str | int | None = None, where: str = "", key: str = "mask"
) -> list[dict]:
    """Geometries (GeoJSON-like dicts, EPSG:4326) of a vector file's features.

    Parameters
    ----------
    path : vector file GDAL reads (GeoJSON, GeoPackage, shapefile, ...).
    layer : layer name or index (default: the first layer).
    where : OGR SQL attribute filter; empty keeps every feature.
    key : config key named in errors.
    """
    import pyogrio
    import shapely
    from rasterio.warp import transform_geom

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{key}: mask file {path} not found")
    try:
        meta, _, wkb, _ = pyogrio.raw.read(
            path, layer=layer if layer not in ("", None) else None, where=where or None
        )
    except Exception as err:  # pyogrio raises DataSourceError/DataLayerError/FieldError
        raise ValueError(
            f"{key}: {path} cannot be read as a vector file"
            + (f" (layer {layer!r})" if layer not in ("", None) else "")
            + (f" with where={where!r}" if where else "")
            + f": {err}"
        ) from err
    geoms = [g for g in shapely.from_wkb(wkb) if g is not None and not g.is_empty]
    if not geoms:
        raise ValueError(
            f"{key}: {path} has no geometry"
            + (f" matching where={where!r}" if where else "")
            + (f" in layer {layer!r}" if layer not in ("", None) else "")
        )
    out = [shapely.geometry.mapping(g) for g in geoms]
    crs = meta.get("crs")
    if crs and crs.upper() not in ("EPSG:4326", "OGC:CRS84"):
        out = [transform_geom(crs, "EPSG:4326", g) for g in out]
    logger.info("mask %s: %d features (crs %s)", path, len(out), crs)
    return out


def rasterize(geometries: Sequence[Mapping], grid: Grid, *, rule: str = "centre") -> np.ndarray:
    """Boolean ``(lat, lon)`` mask of the grid cells inside ``geometries`` under ``rule``."""
    from rasterio.features import rasterize as _rasterize

    if rule not in RULES:
        raise ValueError(f"mask rule must be one of {RULES}; found {rule!r}")
    if not geometries:
        return np.zeros(grid.shape, dtype=bool)
    burned = _rasterize(
        ((g, 1) for g in geometries),
        out_shape=grid.shape,
        transform=grid.transform,
        fill=0,
        all_touched=rule == "all_touched",
        dtype="uint8",
    )
    return burned.astype(bool)


def raster_mask(
    path: str | os.PathLike,
    grid: Grid,
    *,
    values: Sequence[float] = (),
    band: int = 1,
    key: str = "mask",
) -> np.ndarray:
    """Boolean mask from a raster: the source pixel under each cell centre (nearest
    neighbour), inside when it is one of ``values`` (or any valid non-zero value)."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{key}: mask file {path} not found")
    try:
        src = rasterio.open(path)
    except Exception as err:
        raise ValueError(f"{key}: {path} cannot be read as a raster: {err}") from err
    with src:
        if src.crs is None:
            raise ValueError(f"{key}: raster {path} has no CRS; expected a georeferenced file")
        data = src.read(band)
        nodata = src.nodata
        out = np.zeros(grid.shape, dtype=np.float64)
        valid = np.ones(data.shape, dtype=np.uint8)
        if nodata is not None:
            valid[data == nodata] = 0
        if np.issubdtype(data.dtype, np.floating):
            valid[~np.isfinite(data)] = 0
        if len(values):
            inside = np.isin(data, np.asarray(values, dtype=data.dtype)) & (valid > 0)
        else:
            inside = (data != 0) & (valid > 0)
        reproject(
            inside.astype(np.float64),
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            resampling=Resampling.nearest,
            src_nodata=None,
            dst_nodata=0.0,
        )
    return out > 0.5


def build_mask(spec: Mapping, grid: Grid, key: str = "mask") -> np.ndarray:
    """The mask of a product from its config entry (see the module docstring).

    ``spec`` keys: ``path`` (vector or raster file), ``layer``, ``where``, ``rule``,
    ``values`` (raster), ``box``, ``polygon``. Several of file, box and polygon are combined
    as their union. Raises ``ValueError`` naming ``key`` when the mask is empty on the grid.
    """
    spec = dict(spec or {})
    rule = spec.get("rule", "centre")
    if rule not in RULES:
        raise ValueError(f"{key}.rule must be one of {RULES}; found {rule!r}")
    inside = np.zeros(grid.shape, dtype=bool)
    what = []
    if spec.get("path"):
        path = Path(spec["path"])
        what.append(str(path))
        if path.suffix.lower() in RASTER_SUFFIXES:
            inside |= raster_mask(path, grid, values=spec.get("values", ()), key=f"{key}.path")
        else:
            geoms = read_vector(
                path, layer=spec.get("layer") or None, where=spec.get("where", ""), key=key
            )
            inside |= rasterize(geoms, grid, rule=rule)
    for k in ("box", "polygon"):
        if spec.get(k):
            what.append(f"{k} {spec[k]}")
            inside |= rasterize([geometry_from_config(spec[k], f"{key}.{k}")], grid, rule=rule)
    if not what:
        raise ValueError(f"{key}: no mask given (set path, box or polygon)")
    if not inside.any():
        raise ValueError(
            f"{key}: the mask ({'; '.join(what)}) covers no cell of the grid "
            f"{grid.describe()}; check its extent and CRS"
            + (f" and the filter where={spec['where']!r}" if spec.get("where") else "")
        )
    logger.info(
        "mask %s: %d of %d cells inside (%.1f %%, rule %s)",
        "; ".join(what),
        int(inside.sum()),
        inside.size,
        100 * inside.mean(),
        rule,
    )
    return inside


def write_mask(mask: np.ndarray, grid: Grid, path: str | os.PathLike, **attrs) -> Path:
    """Store a mask as ``mask.nc`` (``mask`` int8: 1 inside, 0 outside; lat, lon)."""
    from .io import write_netcdf

    mask = np.asarray(mask, dtype=bool)
    if mask.shape != grid.shape:
        raise ValueError(f"{path}: mask shape {mask.shape} does not match the grid {grid.shape}")
    da = xr.DataArray(
        mask.astype(np.int8),
        dims=("lat", "lon"),
        coords={"lat": grid.lat, "lon": grid.lon},
        name="mask",
        attrs={
            "long_name": "domain mask (1 = inside the product domain)",
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "outside inside",
        },
    )
    return write_netcdf(da, path, attrs={"cells_inside": int(mask.sum()), **attrs})


def read_mask(path: str | os.PathLike, grid: Grid | None = None) -> np.ndarray:
    """Boolean ``(lat, lon)`` mask stored by :func:`write_mask` (checked against ``grid``)."""
    from .io import read_netcdf

    with read_netcdf(path, load=True) as ds:
        if "mask" not in ds:
            raise KeyError(f"{path}: no variable 'mask' (has {sorted(ds.data_vars)})")
        m = np.asarray(ds["mask"].values) > 0
        if grid is not None and m.shape != grid.shape:
            raise ValueError(f"{path}: mask of {m.shape} cells; the grid has {grid.shape}")
    return m


def points_inside(geometry: Mapping, lon, lat) -> np.ndarray:
    """Which points ``(lon, lat)`` lie inside a GeoJSON-like polygon (boundary included)."""
    import shapely

    geom = shapely.geometry.shape(geometry)
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return shapely.intersects_xy(geom, lon, lat)
