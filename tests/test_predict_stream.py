"""Streamed NetCDF writing: block by block equals the in-memory writer; SO2 prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _so2_fixtures import GRID, make_inputs

from gridfuse.features import FeatureConfig, attach_values, station_frame, station_pixels
from gridfuse.io import config_hash, read_netcdf, write_netcdf, write_netcdf_blocks
from gridfuse.models.registry import make
from gridfuse.models.so2 import (
    DEFAULT_LIGHTGBM,
    ModelSettings,
    predict_year,
    predict_year_to_netcdf,
    with_coords,
)

TIMES = pd.date_range("2019-12-30", periods=7, freq="D")
LAT = np.array([36.705, 36.695, 36.685])
LON = np.array([101.505, 101.515, 101.525, 101.535])


def _cube(seed=0):
    rng = np.random.default_rng(seed)
    data = rng.gamma(1.0, 2.0, (TIMES.size, LAT.size, LON.size)).astype("f4")
    data[2, 1, 1] = np.nan
    return data


def _blocks(data, step):
    for a in range(0, data.shape[0], step):
        yield slice(a, min(a + step, data.shape[0])), data[a : a + step]


def test_blocks_equal_the_in_memory_writer(tmp_path):
    data = _cube()
    cfg = {"grid": {"res": 0.01}}
    streamed = write_netcdf_blocks(
        tmp_path / "s.nc",
        "so2",
        _blocks(data, 3),  # 3 + 3 + 1 days: a short last block
        times=TIMES,
        lat=LAT,
        lon=LON,
        cfg=cfg,
        sources=["era5_met", "tropomi"],
        attrs={"note": "x"},
    )
    da = xr.DataArray(
        data, dims=("time", "lat", "lon"), coords={"time": TIMES, "lat": LAT, "lon": LON}
    )
    whole = write_netcdf(
        da.rename("so2"),
        tmp_path / "w.nc",
        cfg=cfg,
        sources=["era5_met", "tropomi"],
        attrs={"note": "x"},
    )
    a, b = read_netcdf(streamed, load=True), read_netcdf(whole, load=True)
    xr.testing.assert_identical(a["so2"].drop_attrs(), b["so2"].drop_attrs())
    assert a["so2"].attrs == b["so2"].attrs
    assert a["so2"].attrs["units"] == "ug m-3"
    assert a.attrs["config_hash"] == config_hash(cfg) == b.attrs["config_hash"]
    assert a.attrs["sources"] == "era5_met, tropomi" and a.attrs["note"] == "x"
    assert a["lat"].attrs["standard_name"] == "latitude"
    assert np.isnan(a["so2"].values[2, 1, 1])
    # same on-disk layout: float32, compressed, one-day chunks
    import netCDF4

    with netCDF4.Dataset(streamed) as nc:
        v = nc["so2"]
        assert v.dtype == np.float32 and v.filters()["zlib"] and v.chunking()[0] == 1
        assert nc["time"].units == "days since 1970-01-01"


def test_unwritten_day_leaves_no_file(tmp_path):
    data = _cube()
    blocks = [(slice(0, 3), data[:3]), (slice(4, 7), data[4:])]  # day 3 missing
    with pytest.raises(ValueError, match="1 of 7 days of so2 were never written"):
        write_netcdf_blocks(tmp_path / "x.nc", "so2", blocks, times=TIMES, lat=LAT, lon=LON)
    assert not (tmp_path / "x.nc").exists()
    assert not list(tmp_path.iterdir())  # no temporary file left either


def test_wrong_block_shape_is_named(tmp_path):
    data = _cube()
    with pytest.raises(ValueError, match=r"block for days 0\.\.3 of so2 has shape"):
        write_netcdf_blocks(
            tmp_path / "x.nc",
            "so2",
            [(slice(0, 3), data[:2])],
            times=TIMES,
            lat=LAT,
            lon=LON,
        )
    assert not (tmp_path / "x.nc").exists()


def test_streamed_prediction_equals_in_memory(tmp_path):
    dyn, st, stations, daily = make_inputs(n_days=12, n_stations=10)
    cfg = FeatureConfig(m1=8, m2=4, seed=1)
    px = station_pixels(stations, GRID)
    frame = with_coords(attach_values(station_frame(dyn, st, px, cfg), daily, px), GRID)
    settings = ModelSettings(
        lightgbm={**DEFAULT_LIGHTGBM, "num_leaves": 7, "min_data_in_leaf": 5},
        num_boost_round=30,
        early_stopping_rounds=5,
    )
    model = make("so2", "lightgbm", params=settings, features=cfg, grid=GRID).fit(frame)
    dyn = dyn.isel(time=slice(0, 5))
    ref = predict_year(model, dyn, st, tile=8, time_block=2)
    out = predict_year_to_netcdf(
        model,
        dyn,
        st,
        tmp_path / "2018.nc",
        tile=8,
        time_block=2,
        geotiff_dir=tmp_path / "tif",
        cfg={"k": 1},
        sources=["tropomi"],
        utc_start_hour=16,
        flag_groups={"tropomi": ["so2_column"], "era5_met": ["t2m", "blh"]},
    )
    ds = read_netcdf(out, load=True)
    got = ds["so2"]
    np.testing.assert_array_equal(got.values, ref.values)
    # the quality layer: bit 0 where the TROPOMI column was valid, bit 1 for ERA5 met
    flags = ds["source_flags"].values
    col = dyn["so2_column"].transpose("time", "lat", "lon").values
    met = np.isfinite(dyn["t2m"].values) & np.isfinite(dyn["blh"].values)
    np.testing.assert_array_equal(flags & 1, np.isfinite(col).astype("i1"))
    np.testing.assert_array_equal(flags >> 1 & 1, met.astype("i1"))
    assert ds["source_flags"].attrs["flag_meanings"] == "tropomi_valid era5_met_valid"
    assert "time_bnds" in ds.coords
    np.testing.assert_array_equal(got["time"].values, ref["time"].values)
    np.testing.assert_allclose(got["lat"].values, GRID.lat)
    assert len(list((tmp_path / "tif").glob("so2_*.tif"))) == 5
