"""Regular latitude/longitude target grids (EPSG:4326).

A :class:`Grid` is bounds plus a resolution.  Cell centres are computed as
``origin + (i + 0.5) * res`` in float64, never by accumulating floats, and arrays
are laid out ``(time, lat, lon)`` north-up (latitude descending), as in GeoTIFF.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine

__all__ = ["Grid", "PRESETS", "tile_slices"]

_TOL = 1e-6  # fraction of a cell accepted as rounding when bounds are not exact multiples


@dataclass(frozen=True)
class Grid:
    """A regular lon/lat grid given by its outer bounds and cell size (degrees).

    Parameters
    ----------
    west, south, east, north : float
        Outer cell edges in degrees (EPSG:4326).
    res : float
        Cell size in degrees (square cells).
    """

    west: float
    south: float
    east: float
    north: float
    res: float

    def __post_init__(self) -> None:
        # canonical form: bounds derived by arithmetic (transforms, coordinates) carry
        # float noise like 30.049999999999997; 10 decimals is far below any cell size
        for name in ("west", "south", "east", "north", "res"):
            object.__setattr__(self, name, round(float(getattr(self, name)), 10))
        if not self.res > 0:
            raise ValueError(f"grid resolution must be positive, got {self.res}")
        if not (self.east > self.west and self.north > self.south):
            raise ValueError(
                f"grid bounds must have east > west and north > south, got "
                f"west={self.west} east={self.east} south={self.south} north={self.north}"
            )
        if not (-90 <= self.south and self.north <= 90):
            raise ValueError(f"grid latitudes outside [-90, 90]: {self.south}..{self.north}")
        for name, span in (("lon", self.east - self.west), ("lat", self.north - self.south)):
            n = span / self.res
            if abs(n - round(n)) > _TOL * max(1.0, n) and abs(n - round(n)) > 1e-3:
                raise ValueError(
                    f"grid {name} span {span} is not a whole number of cells of {self.res} "
                    f"({n:.6f} cells)"
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: Mapping) -> Grid:
        """Build from a config mapping with ``west, south, east, north, res``."""
        try:
            return cls(*(float(cfg[k]) for k in ("west", "south", "east", "north", "res")))
        except KeyError as err:
            raise ValueError(f"grid config lacks key {err.args[0]!r}: {dict(cfg)}") from None

    @classmethod
    def preset(cls, name: str) -> Grid:
        """One of the named grids in :data:`PRESETS` (``qinghai``, ``china``)."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown grid preset {name!r}; known: {sorted(PRESETS)}") from None

    @classmethod
    def from_coords(cls, lat: np.ndarray, lon: np.ndarray) -> Grid:
        """Recover a grid from regular cell-centre coordinates (either lat order)."""
        lat = np.asarray(lat, dtype="f8")
        lon = np.asarray(lon, dtype="f8")
        if lat.size < 2 or lon.size < 2:
            raise ValueError("need at least two cells along each axis to infer a grid")
        res = float(abs(lon[1] - lon[0]))
        if not np.isclose(abs(lat[1] - lat[0]), res, rtol=1e-6):
            raise ValueError(f"cells are not square: dlon={res}, dlat={abs(lat[1] - lat[0])}")
        return cls(
            west=float(lon.min() - res / 2),
            south=float(lat.min() - res / 2),
            east=float(lon.max() + res / 2),
            north=float(lat.max() + res / 2),
            res=res,
        )

    # ------------------------------------------------------------------ geometry
    @property
    def nlon(self) -> int:
        return int(round((self.east - self.west) / self.res))

    @property
    def nlat(self) -> int:
        return int(round((self.north - self.south) / self.res))

    @property
    def shape(self) -> tuple[int, int]:
        """``(nlat, nlon)``."""
        return (self.nlat, self.nlon)

    @property
    def size(self) -> int:
        return self.nlat * self.nlon

    @cached_property
    def lon(self) -> np.ndarray:
        """Cell-centre longitudes, ascending (float64)."""
        return self.west + (np.arange(self.nlon, dtype="f8") + 0.5) * self.res

    @cached_property
    def lat(self) -> np.ndarray:
        """Cell-centre latitudes, descending (north-up, float64)."""
        return self.north - (np.arange(self.nlat, dtype="f8") + 0.5) * self.res

    @property
    def transform(self) -> Affine:
        """GDAL/rasterio affine transform of the north-up raster."""
        return Affine(self.res, 0.0, self.west, 0.0, -self.res, self.north)

    @property
    def crs(self) -> str:
        return "EPSG:4326"

    def rowcol(self, lon, lat, *, check: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of the cells containing points.

        Points exactly on an inner cell edge go to the cell east / south of it.
        With ``check`` a point outside the grid raises ``ValueError``; without it the
        returned indices are -1 for such points.
        """
        lon = np.atleast_1d(np.asarray(lon, dtype="f8"))
        lat = np.atleast_1d(np.asarray(lat, dtype="f8"))
        col = np.floor((lon - self.west) / self.res + 1e-9).astype("i8")
        row = np.floor((self.north - lat) / self.res + 1e-9).astype("i8")
        bad = (col < 0) | (col >= self.nlon) | (row < 0) | (row >= self.nlat)
        bad |= ~np.isfinite(lon) | ~np.isfinite(lat)
        if bad.any():
            if check:
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"{int(bad.sum())} point(s) outside grid {self.bounds}; first: "
                    f"lon={lon[i]}, lat={lat[i]}"
                )
            col = np.where(bad, -1, col)
            row = np.where(bad, -1, row)
        return row, col

    def contains(self, lon, lat) -> np.ndarray:
        """Boolean mask of points inside the grid."""
        row, _ = self.rowcol(lon, lat, check=False)
        return row >= 0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)``."""
        return (self.west, self.south, self.east, self.north)

    def padded(self, margin: float) -> Grid:
        """The grid extended by ``margin`` degrees on every side (snapped to cells)."""
        n = math.ceil(margin / self.res - _TOL)
        pad = n * self.res
        return Grid(
            self.west - pad,
            max(-90.0, self.south - pad),
            self.east + pad,
            min(90.0, self.north + pad),
            self.res,
        )

    def with_res(self, res: float) -> Grid:
        """Same bounds, another resolution."""
        return Grid(self.west, self.south, self.east, self.north, res)

    # ------------------------------------------------------------------ templates
    def coords(self) -> dict[str, xr.DataArray]:
        """CF coordinate variables ``lat`` and ``lon``."""
        lat = xr.DataArray(
            self.lat,
            dims="lat",
            attrs={
                "units": "degrees_north",
                "standard_name": "latitude",
                "long_name": "latitude",
                "axis": "Y",
            },
        )
        lon = xr.DataArray(
            self.lon,
            dims="lon",
            attrs={
                "units": "degrees_east",
                "standard_name": "longitude",
                "long_name": "longitude",
                "axis": "X",
            },
        )
        return {"lat": lat, "lon": lon}

    def template(
        self, times=None, *, dtype="f4", fill=np.nan, name: str | None = None
    ) -> xr.DataArray:
        """An array of ``fill`` shaped ``(time, lat, lon)`` (or ``(lat, lon)`` without times)."""
        coords = self.coords()
        if times is None:
            data = np.full(self.shape, fill, dtype=dtype)
            return xr.DataArray(data, dims=("lat", "lon"), coords=coords, name=name)
        times = pd.DatetimeIndex(times)
        data = np.full((len(times),) + self.shape, fill, dtype=dtype)
        coords["time"] = xr.DataArray(times, dims="time", attrs={"standard_name": "time"})
        return xr.DataArray(data, dims=("time", "lat", "lon"), coords=coords, name=name)

    def describe(self) -> str:
        return (
            f"{self.nlat}x{self.nlon} cells of {self.res} deg over lon {self.west}..{self.east}, "
            f"lat {self.south}..{self.north}"
        )


PRESETS: dict[str, Grid] = {
    # The Qinghai record: lon 89.5-103.4 E, lat 31.37-39.87 N (its metadata gives 31.3667 and
    # 39.8667, i.e. 31 deg 22' and 39 deg 52'), 0.01 deg -> 850 x 1390 cells.
    "qinghai": Grid(89.5, 31.37, 103.4, 39.87, 0.01),
    # Mainland China at 0.01 deg, 73-135 E, 18-54 N -> 3600 x 6200 cells.
    "china": Grid(73.0, 18.0, 135.0, 54.0, 0.01),
}


def tile_slices(
    nlat: int, nlon: int, tile: int, mask: np.ndarray | None = None
) -> list[tuple[slice, slice]]:
    """``tile x tile`` windows ``(row slice, column slice)`` covering an ``nlat x nlon`` grid,
    row-major: the tiles of gridded prediction (both kinds).

    With ``mask`` (bool ``(nlat, nlon)``, True = inside the domain), tiles holding no
    inside cell are left out: they are never predicted.
    """
    if tile < 1:
        raise ValueError(f"tile must be >= 1 cell, got {tile}")
    if mask is not None and mask.shape != (nlat, nlon):
        raise ValueError(f"mask has shape {mask.shape}, the grid is {(nlat, nlon)}")
    out = []
    for i0 in range(0, nlat, tile):
        for j0 in range(0, nlon, tile):
            sl = (slice(i0, min(nlat, i0 + tile)), slice(j0, min(nlon, j0 + tile)))
            if mask is None or mask[sl].any():
                out.append(sl)
    return out
