"""Product days and sub-daily -> daily aggregation.

A product day ``D`` with ``utc_start_hour`` ``H`` runs from ``H``:00 UTC of ``D-1`` to
``H``:00 UTC of ``D`` when ``H > 0`` (12 = the CMA 20:00-20:00 Beijing-time day, 16 = the
Beijing calendar day), and is the UTC day ``D`` when ``H = 0``.

Sub-daily sources stamp their steps differently; the ``convention`` says what a stamp ``t``
of a step of length ``step`` means:

``"end"``
    the step covers ``(t - step, t]`` (ERA5 ``tp``: accumulated over the hour ending at
    ``t``; GLDAS ``_tavg``: mean over the past 3 hours);
``"start"``
    the step covers ``[t, t + step)`` (IMERG ``S000000``, GSMaP hour ``HH``, CMORPH);
``"instant"``
    a value at ``t`` itself (ERA5 ``t2m``, ``blh``...), belonging to the day whose
    half-open interval ``[start, end)`` holds ``t``.

A day's value uses exactly the ``24 h / step`` steps of that day; a day lacking one (a
missing file or time step) is NaN and counted in ``attrs["days_missing"]``; a pixel whose
value is missing at any step of the day is NaN for that day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

logger = logging.getLogger(__name__)

__all__ = ["DayWindow", "day_of", "expected_stamps", "aggregate_daily", "product_days"]

CONVENTIONS = ("start", "end", "instant")
_DAY = pd.Timedelta("1D")


@dataclass(frozen=True)
class DayWindow:
    """The 24 hours of a product day, given by the UTC hour at which it starts.

    Parameters
    ----------
    utc_start_hour : int
        0..23; day ``D`` is ``[D-1 H:00, D H:00)`` for ``H > 0`` and ``[D 00:00, D+1 00:00)``
        for ``H = 0``.
    """

    utc_start_hour: int = 0

    def __post_init__(self) -> None:
        if not (
            isinstance(self.utc_start_hour, (int, np.integer)) and 0 <= self.utc_start_hour < 24
        ):
            raise ValueError(
                f"utc_start_hour must be an integer 0..23, got {self.utc_start_hour!r}"
            )

    @property
    def offset(self) -> pd.Timedelta:
        """Start of day ``D`` relative to ``D`` 00:00 UTC (``H - 24`` hours, or 0)."""
        h = int(self.utc_start_hour)
        return pd.Timedelta(hours=h - 24 if h > 0 else 0)

    def bounds(self, days) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
        """``(start, end)`` UTC of each product day; the day is ``[start, end)``."""
        days = pd.DatetimeIndex(days).normalize()
        start = days + self.offset
        return start, start + _DAY

    def day_of_instant(self, times) -> pd.DatetimeIndex:
        """Product day holding each UTC instant (``start <= t < end``)."""
        t = pd.DatetimeIndex(times)
        return (t - self.offset).floor("D")


def _step(step) -> pd.Timedelta:
    step = pd.Timedelta(step)
    if step <= pd.Timedelta(0) or _DAY % step != pd.Timedelta(0):
        raise ValueError(f"step {step} must be positive and divide 24 hours")
    return step


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"time-stamp convention must be one of {CONVENTIONS}, got {convention!r}")


def day_of(times, window: DayWindow | int, convention: str = "end", step="1h") -> pd.DatetimeIndex:
    """Product day of each sub-daily step.

    Parameters
    ----------
    times : array-like of datetime64
        Step stamps.
    window : DayWindow or int
        Day window (or its ``utc_start_hour``).
    convention : {"end", "start", "instant"}
        Meaning of a stamp (module docstring).
    step : timedelta-like
        Step length (ignored for ``"instant"``).

    Raises
    ------
    ValueError
        When a step straddles a day boundary (the window start is not on the step grid).
    """
    window = window if isinstance(window, DayWindow) else DayWindow(int(window))
    _check_convention(convention)
    t = pd.DatetimeIndex(times)
    if convention == "instant":
        return window.day_of_instant(t)
    step = _step(step)
    first = t if convention == "start" else t - step
    day = window.day_of_instant(first)
    start, _ = window.bounds(day)
    straddle = (first - start + step) > _DAY
    if np.any(straddle):
        i = int(np.flatnonzero(straddle)[0])
        raise ValueError(
            f"step {step} stamped {t[i]} ({convention}) straddles the boundary of product day "
            f"{day[i].date()} (UTC start hour {window.utc_start_hour}); the window start must "
            f"fall on the step grid"
        )
    return day


def expected_stamps(
    days, window: DayWindow | int, convention: str = "end", step="1h"
) -> np.ndarray:
    """Stamps of the steps making each product day, shape ``(n_days, 24h / step)``."""
    window = window if isinstance(window, DayWindow) else DayWindow(int(window))
    _check_convention(convention)
    step = _step(step)
    n = int(_DAY / step)
    start, _ = window.bounds(days)
    k = np.arange(n) * step.to_timedelta64()
    out = start.to_numpy()[:, None] + k[None, :]
    if convention == "end":
        out = out + step.to_timedelta64()
    # 'instant' and 'start' both stamp at the beginning of each sub-interval
    if n > 1 and window.utc_start_hour * pd.Timedelta("1h") % step != pd.Timedelta(0):
        raise ValueError(
            f"UTC start hour {window.utc_start_hour} is not on the {step} step grid of this source"
        )
    return out.astype("datetime64[ns]")


def product_days(start, end) -> pd.DatetimeIndex:
    """Inclusive daily range of product days."""
    return pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(), freq="D")


def aggregate_daily(
    da: xr.DataArray,
    window: DayWindow | int,
    convention: str = "end",
    step="1h",
    how: str = "sum",
    days=None,
    min_valid: int | None = None,
    name: str | None = None,
) -> xr.DataArray:
    """Sub-daily values -> one value per product day (sum or mean).

    Parameters
    ----------
    da : xarray.DataArray
        Sub-daily data with a ``time`` dimension (any other dims); for ``how="sum"`` the
        values must be amounts per step (e.g. mm per step), not rates.
    window : DayWindow or int
        Product day window (or its ``utc_start_hour``).
    convention : {"end", "start", "instant"}
        Meaning of the stamps (module docstring).
    step : timedelta-like
        Step length; ``24 h`` must be a multiple of it.
    how : {"sum", "mean"}
        Daily total or daily mean.
    days : array-like of dates, optional
        Product days wanted (default: every day touched by ``da``).  Days without data
        come out NaN.
    min_valid : int, optional
        Default (None): every step of the day must be present and finite, else NaN.  With
        ``min_valid = m``, a value needs at least ``m`` finite steps; the mean of the valid
        steps is used (times the number of steps for ``how="sum"``).
    name : str, optional
        Name of the result (default ``da.name``).

    Returns
    -------
    xarray.DataArray
        ``time`` = product days (datetime64, midnight); float32 for float input;
        ``attrs["days_missing"]`` counts days that lack a step (or, with ``min_valid``,
        days with fewer valid steps anywhere), ``attrs["steps_per_day"]`` the step count.
    """
    window = window if isinstance(window, DayWindow) else DayWindow(int(window))
    if how not in ("sum", "mean"):
        raise ValueError(f"how must be 'sum' or 'mean', got {how!r}")
    if "time" not in da.dims:
        raise ValueError(f"aggregate_daily: {da.name!r} has no 'time' dimension ({da.dims})")
    step = _step(step)
    times = pd.DatetimeIndex(da["time"].values)
    if days is None:
        d = day_of(times, window, convention, step)
        days = pd.DatetimeIndex(np.unique(d.to_numpy()))
    days = pd.DatetimeIndex(days).normalize()
    stamps = expected_stamps(days, window, convention, step)
    nd, ns = stamps.shape
    flat = pd.DatetimeIndex(stamps.ravel())
    if times.has_duplicates:
        raise ValueError(f"aggregate_daily: {da.name!r} has duplicate time stamps")
    pos = times.get_indexer(flat)
    present = (pos >= 0).reshape(nd, ns)
    other = [d for d in da.dims if d != "time"]
    da = da.transpose("time", *other)
    values = np.asarray(da.values)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype("f8")
    buf = np.full((nd * ns,) + values.shape[1:], np.nan, dtype=values.dtype)
    ok = pos >= 0
    buf[ok] = values[pos[ok]]
    buf = buf.reshape((nd, ns) + values.shape[1:])
    if min_valid is None:
        out = buf.sum(axis=1) if how == "sum" else buf.mean(axis=1)
        days_missing = int((~present.all(axis=1)).sum())
    else:
        nvalid = np.isfinite(buf).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(buf, axis=1) / np.maximum(nvalid, 1)
        mean = np.where(nvalid >= min_valid, mean, np.nan)
        out = mean * ns if how == "sum" else mean
        days_missing = int((present.sum(axis=1) < min_valid).sum())
    out = out.astype(values.dtype if values.dtype == np.float32 else "f8")
    coords = {k: v for k, v in da.coords.items() if "time" not in v.dims}
    coords["time"] = days
    res = xr.DataArray(out, dims=("time", *other), coords=coords, name=name or da.name)
    res.attrs.update(da.attrs)
    res.attrs["days_missing"] = days_missing
    res.attrs["steps_per_day"] = ns
    if days_missing:
        logger.warning(
            "%s: %d of %d product days lack sub-daily steps (set to NaN)",
            res.name,
            days_missing,
            nd,
        )
    return res
