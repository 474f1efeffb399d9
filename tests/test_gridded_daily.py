"""Daily gridded product readers (geotiff_daily, netcdf_daily) on real-layout files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from gridfuse.daily import DayWindow
from gridfuse.grid import Grid
from gridfuse.sources.gridded_daily import (
    crop_to_bbox,
    date_from_name,
    read_geotiff_daily,
    read_netcdf_daily,
)

GRID = Grid(10.0, 40.0, 10.5, 40.4, 0.1)  # 4 x 5 cells
DAYS = pd.date_range("2001-03-01", periods=4, freq="D")


def _field(k: int) -> np.ndarray:
    """Distinct, recognizable values: 100*day + 10*row + col."""
    r, c = np.indices(GRID.shape)
    return (100.0 * k + 10 * r + c).astype("float32")


def _write_tif(path, bands, grid=GRID, nodata=-9999.0, descriptions=None):
    prof = dict(
        driver="GTiff",
        height=grid.nlat,
        width=grid.nlon,
        count=len(bands),
        dtype="float32",
        crs="EPSG:4326",
        transform=grid.transform,
        nodata=nodata,
    )
    with rasterio.open(path, "w", **prof) as dst:
        for i, b in enumerate(bands, 1):
            dst.write(np.where(np.isfinite(b), b, nodata).astype("float32"), i)
            if descriptions:
                dst.set_band_description(i, descriptions[i - 1])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("chirps-v2.0.1983.01.05.tif", "1983-01-05"),
        ("precip_19830105.tif.gz", "1983-01-05"),
        ("P_1983-01-05.nc", "1983-01-05"),
        ("persiann_cdr_v01r01_19831231_c20140523.nc", "2014-05-23"),  # last date wins
        ("band_1", None),
        ("x_19831340.tif", None),  # month 13
    ],
)
def test_date_from_name(name, expected):
    got = date_from_name(name)
    assert (got is None) if expected is None else got == pd.Timestamp(expected)


def test_multiband_without_dates_needs_first_date(tmp_path):
    path = tmp_path / "CHIRPS.tif"
    bands = [_field(k) for k in range(4)]
    bands[1][0, 0] = np.nan  # nodata cell
    _write_tif(path, bands)
    with pytest.raises(ValueError, match="first_date"):
        read_geotiff_daily(path, DAYS)
    da = read_geotiff_daily(path, DAYS, first_date="2001-03-01")
    assert da.name == "precip" and da.dims == ("time", "lat", "lon")
    assert da.dtype == np.float32
    np.testing.assert_allclose(da["lat"], GRID.lat)
    np.testing.assert_allclose(da["lon"], GRID.lon)
    np.testing.assert_array_equal(da.isel(time=2).values, _field(2))
    assert np.isnan(da.values[1, 0, 0]) and da.values[1, 0, 1] == _field(1)[0, 1]
    assert da.attrs["days_missing"] == 0
    # a later window of days: band 3 is 2001-03-04
    late = read_geotiff_daily(
        path, pd.date_range("2001-03-04", "2001-03-06"), first_date="2001-03-01"
    )
    np.testing.assert_array_equal(late.values[0], _field(3))
    assert np.isnan(late.values[1:]).all() and late.attrs["days_missing"] == 2


def test_band_descriptions_give_dates(tmp_path):
    path = tmp_path / "multi.tif"
    # bands stored out of order; their descriptions say which day they are
    order = [2, 0, 3, 1]
    _write_tif(
        path,
        [_field(k) for k in order],
        descriptions=[f"{DAYS[k]:%Y-%m-%d}" for k in order],
    )
    da = read_geotiff_daily(path, DAYS)
    for k in range(4):
        np.testing.assert_array_equal(da.values[k], _field(k))


def test_daily_files_in_folder_and_crop(tmp_path):
    (tmp_path / "sub").mkdir()
    for k in (0, 1, 3):  # day 2 is missing
        _write_tif(tmp_path / "sub" / f"chirps-v2.0.{DAYS[k]:%Y.%m.%d}.tif", [_field(k)])
    # a file of another year is skipped without being opened
    (tmp_path / "sub" / "chirps-v2.0.1999.01.01.tif").write_bytes(b"not a tif")
    bbox = (10.15, 40.05, 10.35, 40.25)  # overlaps cols 1..3, rows 1..3
    da = read_geotiff_daily(tmp_path, DAYS, DayWindow(0), bbox)
    assert da.shape == (4, 3, 3)
    np.testing.assert_allclose(da["lon"], GRID.lon[1:4])
    np.testing.assert_allclose(da["lat"], GRID.lat[1:4])
    np.testing.assert_array_equal(da.values[3], _field(3)[1:4, 1:4])
    assert np.isnan(da.values[2]).all() and da.attrs["days_missing"] == 1


def test_netcdf_units_lat_order_and_lon_wrap(tmp_path):
    # kg m-2 s-1, latitude ascending, longitudes 0..360: all normalized by the reader
    lon360 = GRID.lon + 180.0  # 190.05 .. 190.45 = -169.95 .. -169.55
    rate = np.stack([_field(k) for k in range(4)]) / 86400.0
    ds = xr.Dataset(
        {"pr": (("time", "latitude", "longitude"), rate[:, ::-1, :], {"units": "kg m-2 s-1"})},
        coords={
            "time": DAYS + pd.Timedelta(hours=12),
            "latitude": GRID.lat[::-1],
            "longitude": lon360,
        },
    )
    path = tmp_path / "pr_2001.nc"
    ds.to_netcdf(path)
    da = read_netcdf_daily(path, DAYS, None, (-170.0, 40.0, -169.5, 40.4))
    assert da.dims == ("time", "lat", "lon")
    assert da["lat"].values[0] > da["lat"].values[-1]
    np.testing.assert_allclose(da["lon"], GRID.lon - 180.0, atol=1e-9)
    np.testing.assert_allclose(da.values, np.stack([_field(k) for k in range(4)]), rtol=1e-5)


def test_netcdf_unknown_units_and_ambiguous_variable(tmp_path):
    base = {"time": DAYS, "lat": GRID.lat, "lon": GRID.lon}
    x = np.zeros((4,) + GRID.shape, "f4")
    xr.Dataset({"rain": (("time", "lat", "lon"), x, {"units": "furlongs"})}, coords=base).to_netcdf(
        tmp_path / "a.nc"
    )
    with pytest.raises(ValueError, match="furlongs"):
        read_netcdf_daily(tmp_path / "a.nc", DAYS)
    xr.Dataset(
        {"u": (("time", "lat", "lon"), x), "v": (("time", "lat", "lon"), x)}, coords=base
    ).to_netcdf(tmp_path / "b.nc")
    with pytest.raises(ValueError, match="set the source's variable"):
        read_netcdf_daily(tmp_path / "b.nc", DAYS)
    assert read_netcdf_daily(tmp_path / "b.nc", DAYS, variable="v").shape == (4,) + GRID.shape


def test_crop_outside_raises():
    da = xr.DataArray(np.zeros(GRID.shape), dims=("lat", "lon"), coords=GRID.coords(), name="x")
    with pytest.raises(ValueError, match="does not overlap"):
        crop_to_bbox(da, (0.0, 0.0, 1.0, 1.0))


def test_real_rfmerge_geotiff_matches_netcdf_and_rasterio(realdata):
    root = realdata / "rfmerge_valparaiso"
    days = pd.date_range("1983-01-01", "1983-08-31", freq="D")
    grid = Grid(-71.85, -34.0, -69.95, -32.0, 0.05)
    tif = read_geotiff_daily(
        root / "original" / "CHIRPS5km.tif", days, None, grid.padded(0.5), first_date=days[0]
    )
    nc = read_netcdf_daily(root / "converted" / "CHIRPS5km.nc", days, None, grid.padded(0.5))
    assert tif.shape == nc.shape == (243, 40, 38)
    np.testing.assert_array_equal(tif.values, nc.values)  # NaN in the same places too
    np.testing.assert_allclose(tif["lat"], grid.lat, atol=1e-5)
    np.testing.assert_allclose(tif["lon"], grid.lon, atol=1e-5)
    with rasterio.open(root / "original" / "CHIRPS5km.tif") as src:
        band = src.read(100)  # 1983-04-10
    ok = band > -1e30
    np.testing.assert_array_equal(tif.values[99][ok], band[ok])
    assert np.isnan(tif.values[99][~ok]).all() and (~ok).sum() > 0  # ocean cells
    assert 0 <= np.nanmin(tif.values) and np.nanmax(tif.values) == pytest.approx(114.3, abs=0.05)
