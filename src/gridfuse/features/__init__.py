"""Features of the SO2 model (Method A): calendar, location, random IDs, spatial sampling,
parameter convolution, sequential multi-pollutant input, and the table builder."""

from .calendar import CALENDAR_COLUMNS, calendar_features
from .convolution import ParameterConvolution
from .location import LOCATION_COLUMNS, location_features
from .random_id import RandomID
from .sequential import SEQUENTIAL_COLUMN, out_of_fold
from .spatial import (
    decluster_weights,
    neighbourhood_mean,
    spatial_columns,
    upwind_columns,
    upwind_offsets,
    window_mean_at,
)
from .table import (
    DEFAULT_DYNAMIC,
    DEFAULT_STATIC,
    TECHNIQUES,
    FeatureBuilder,
    FeatureConfig,
    attach_values,
    open_dynamic,
    station_frame,
    station_pixels,
    tile_frame,
)

__all__ = [
    "CALENDAR_COLUMNS",
    "LOCATION_COLUMNS",
    "SEQUENTIAL_COLUMN",
    "DEFAULT_DYNAMIC",
    "DEFAULT_STATIC",
    "TECHNIQUES",
    "calendar_features",
    "location_features",
    "RandomID",
    "ParameterConvolution",
    "out_of_fold",
    "neighbourhood_mean",
    "window_mean_at",
    "spatial_columns",
    "upwind_columns",
    "upwind_offsets",
    "decluster_weights",
    "FeatureConfig",
    "FeatureBuilder",
    "station_pixels",
    "station_frame",
    "attach_values",
    "open_dynamic",
    "tile_frame",
]
