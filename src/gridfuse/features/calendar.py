"""Calendar features: day of year, year, weekday / non-weekday flag (WOND)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CALENDAR_COLUMNS", "calendar_features"]

CALENDAR_COLUMNS = ["doy", "year", "wond"]


def calendar_features(dates) -> pd.DataFrame:
    """Day of year (1-366), year, and ``wond`` = 1 Monday-Friday, 0 Saturday/Sunday.

    Parameters
    ----------
    dates : array-like of datetime64 or DatetimeIndex
        Product days.

    Returns
    -------
    DataFrame with columns :data:`CALENDAR_COLUMNS` (float32), one row per date.
    """
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    return pd.DataFrame(
        {
            "doy": d.day_of_year.to_numpy(np.float32),
            "year": d.year.to_numpy(np.float32),
            "wond": (d.day_of_week < 5).astype(np.float32),
        }
    )
