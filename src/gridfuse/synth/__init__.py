"""Observing-system simulation experiments (OSSE): synthetic truth, sources and stations.

``fields`` holds the shared random-field, DEM and aggregation helpers; ``precip`` the
precipitation demo synthesizer.
"""

from .fields import aggregate_mean, ar1_fields, fractal_dem, gaussian_field

__all__ = ["aggregate_mean", "ar1_fields", "fractal_dem", "gaussian_field"]
