"""Location features: longitude and latitude min-max normalized over the product grid."""

from __future__ import annotations

import numpy as np

from ..grid import Grid

__all__ = ["LOCATION_COLUMNS", "location_features"]

LOCATION_COLUMNS = ["lon_n", "lat_n"]


def location_features(lon, lat, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Min-max normalized lon and lat: 0 at the first cell centre, 1 at the last.

    The range is the grid's (not the samples'), so training rows and prediction cells get
    the same scale.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    lo0, lo1 = grid.lon[0], grid.lon[-1]
    la0, la1 = grid.lat[-1], grid.lat[0]
    lon_n = (lon - lo0) / (lo1 - lo0) if lo1 > lo0 else np.zeros_like(lon)
    lat_n = (lat - la0) / (la1 - la0) if la1 > la0 else np.zeros_like(lat)
    return lon_n.astype(np.float32), lat_n.astype(np.float32)
