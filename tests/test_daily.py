"""Day windows and sub-daily -> daily aggregation on hand-made series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse.daily import DayWindow, aggregate_daily, day_of, expected_stamps


def _series(start, periods, freq, values=None):
    t = pd.date_range(start, periods=periods, freq=freq)
    v = np.arange(periods, dtype="f8") if values is None else values
    return xr.DataArray(v, dims="time", coords={"time": t}, name="x")


def test_window_bounds():
    start, end = DayWindow(12).bounds(["2020-01-01"])
    assert start[0] == pd.Timestamp("2019-12-31 12:00") and end[0] == pd.Timestamp(
        "2020-01-01 12:00"
    )
    start, end = DayWindow(0).bounds(["2020-01-01"])
    assert start[0] == pd.Timestamp("2020-01-01") and end[0] == pd.Timestamp("2020-01-02")
    start, _ = DayWindow(16).bounds(["2020-03-01"])  # Beijing calendar day
    assert start[0] == pd.Timestamp("2020-02-29 16:00")


def test_era5_end_convention_cma_day():
    # hourly tp stamped at the end of its hour: CMA day D = stamps 13 UTC (D-1) .. 12 UTC (D)
    da = _series("2019-12-31 00:00", 72, "1h")
    out = aggregate_daily(da, 12, "end", "1h", days=["2020-01-01"])
    t = pd.DatetimeIndex(da.time.values)
    sel = (t >= "2019-12-31 13:00") & (t <= "2020-01-01 12:00")
    assert sel.sum() == 24
    assert float(out[0]) == pytest.approx(da.values[sel].sum())
    assert float(out[0]) == pytest.approx(sum(range(13, 37)))


def test_era5_end_convention_utc_day():
    # ECMWF rule: UTC day D total = steps 01..23 of D plus 00 UTC of D+1
    da = _series("2020-01-01 00:00", 49, "1h")
    out = aggregate_daily(da, 0, "end", "1h", days=["2020-01-01"])
    assert float(out[0]) == pytest.approx(sum(range(1, 25)))


def test_imerg_start_convention_half_hours():
    # half-hour granules stamped at their start: CMA day D = S12:00 (D-1) .. S11:30 (D)
    da = _series("2019-12-31 00:00", 110, "30min")
    out = aggregate_daily(da, 12, "start", "30min", days=["2020-01-01", "2020-01-02"])
    assert out.attrs["steps_per_day"] == 48
    assert float(out[0]) == pytest.approx(sum(range(24, 72)))
    # the second day lacks its last 10 half hours: NaN and counted
    assert np.isnan(out[1]) and out.attrs["days_missing"] == 1


def test_gldas_three_hourly_end_convention():
    # stamps 03, 06, ..., 21 of D and 00 of D+1 end the 8 intervals of UTC day D
    da = _series("2020-01-01 00:00", 17, "3h")
    out = aggregate_daily(da, 0, "end", "3h", days=["2020-01-01"])
    assert float(out[0]) == pytest.approx(sum(range(1, 9)))
    # CMA day: intervals ending 15 UTC (D-1) .. 12 UTC (D)
    out = aggregate_daily(da, 12, "end", "3h", days=["2020-01-02"])
    assert float(out[0]) == pytest.approx(sum(range(5, 13)))


def test_instant_mean_beijing_day():
    # instantaneous values at 16, 17, ..., 15 UTC belong to Beijing day D
    t = pd.date_range("2020-01-01 16:00", periods=24, freq="1h")
    da = xr.DataArray(np.full(24, 3.0), dims="time", coords={"time": t})
    out = aggregate_daily(da, 16, "instant", "1h", how="mean")
    assert list(out.time.values) == [np.datetime64("2020-01-02")]
    assert float(out[0]) == 3.0 and out.attrs["days_missing"] == 0


def test_missing_pixel_and_min_valid():
    t = pd.date_range("2020-01-01 01:00", periods=24, freq="1h")
    v = np.ones((24, 2))
    v[5, 1] = np.nan
    da = xr.DataArray(v, dims=("time", "x"), coords={"time": t})
    out = aggregate_daily(da, 0, "end", "1h")
    assert float(out[0, 0]) == 24 and np.isnan(out[0, 1])
    out = aggregate_daily(da, 0, "end", "1h", how="sum", min_valid=20)
    assert float(out[0, 1]) == pytest.approx(24.0)  # mean of 23 valid x 24
    out = aggregate_daily(da.isel(time=slice(0, 18)), 0, "end", "1h", min_valid=20)
    assert np.isnan(out[0, 0]) and out.attrs["days_missing"] == 1


def test_step_straddling_boundary_is_an_error():
    with pytest.raises(ValueError, match="step grid"):
        expected_stamps(["2020-01-01"], 16, "end", "3h")
    with pytest.raises(ValueError, match="straddles"):
        day_of(pd.DatetimeIndex(["2020-01-01 18:00"]), 16, "end", "3h")
    with pytest.raises(ValueError, match="divide 24"):
        aggregate_daily(_series("2020-01-01", 5, "1h"), 0, "end", "7h")


@pytest.mark.parametrize(
    "hour,conv,step",
    [(h, c, s) for h in (0, 12, 16) for c, s in (("end", "1h"), ("start", "30min"), ("end", "3h"))][
        :-1
    ],  # 16 UTC is not on the 3-hour grid (tested as an error above)
)
def test_day_of_matches_brute_force(hour, conv, step):
    step_td = pd.Timedelta(step)
    t = pd.date_range("2020-02-27", "2020-03-02", freq=step)
    got = day_of(t, hour, conv, step)
    w = DayWindow(hour)
    cand = pd.date_range("2020-02-25", "2020-03-04")
    starts, ends = w.bounds(cand)
    for ti, gi in zip(t, got):
        lo = ti if conv == "start" else ti - step_td
        hi = lo + step_td
        (k,) = np.flatnonzero((starts <= lo) & (hi <= ends))
        assert cand[k] == gi
    # and expected_stamps is the inverse: each stamp of day D maps back to D
    stamps = expected_stamps(cand[2:5], hour, conv, step)
    back = day_of(stamps.ravel(), hour, conv, step).to_numpy().reshape(stamps.shape)
    assert (back == cand[2:5].to_numpy()[:, None]).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="0..23"):
        DayWindow(24)
    with pytest.raises(ValueError, match="convention"):
        day_of(pd.DatetimeIndex(["2020-01-01"]), 0, "middle")
    with pytest.raises(ValueError, match="time"):
        aggregate_daily(xr.DataArray(np.ones(3), dims="x"), 0)
