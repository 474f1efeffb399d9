"""Tests of gridfuse.regrid: known answers, the NaN rule, and agreement with GDAL."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gridfuse.grid import Grid
from gridfuse.regrid import (
    Regridder,
    axis_weights,
    cubic_kernel,
    regrid,
    regrid_at_points,
    wind_direction,
)

TARGET = Grid(101.0, 36.0, 101.6, 36.5, 0.01)  # 50 x 60 cells
METHODS = ("nearest", "bilinear", "cubic")


def src_axes(res_lon, res_lat=None, west=100.5, north=37.0, east=102.1, south=35.5):
    """Regular source centres (lat descending) covering [west, east] x [south, north]."""
    res_lat = res_lat or res_lon
    lon = west + (np.arange(int(round((east - west) / res_lon))) + 0.5) * res_lon
    lat = north - (np.arange(int(round((north - south) / res_lat))) + 0.5) * res_lat
    return lat, lon


# Source grids of the real sources: aligned 0.1 and 0.25 deg, CMORPH's non-square 8 km
# cells at an odd origin, and a 0.02 deg grid whose edges pass exactly through target
# cell centres (every other target centre is a nearest-neighbour tie).
SOURCES = {
    "0.1": src_axes(0.1),
    "0.25": src_axes(0.25, west=100.0, north=37.5, east=102.5, south=35.0),
    "cmorph": src_axes(0.072756669, 0.072771377, west=100.4637, north=37.1186),
    "ties": src_axes(0.02, west=100.505, north=37.005, east=102.105, south=35.505),
}


def gdal(values, lat, lon, grid, method):
    """Reference: rioxarray / GDAL warp with the same resampling."""
    from rasterio.enums import Resampling

    da = xr.DataArray(values, dims=("band", "y", "x"), coords={"y": lat, "x": lon})
    da = da.rio.write_crs("EPSG:4326")
    out = da.rio.reproject(
        "EPSG:4326",
        shape=grid.shape,
        transform=grid.transform,
        resampling=getattr(Resampling, method),
        nodata=np.nan,
    )
    assert np.allclose(out["y"].values, grid.lat) and np.allclose(out["x"].values, grid.lon)
    return out.values


def interior(lat, lon, grid, cells):
    """Target cells at least ``cells`` source cells inside the source extent."""
    dlat, dlon = abs(lat[1] - lat[0]), lon[1] - lon[0]
    north, south = lat.max() + dlat / 2, lat.min() - dlat / 2
    west, east = lon.min() - dlon / 2, lon.max() + dlon / 2
    rows = (grid.lat < north - cells * dlat) & (grid.lat > south + cells * dlat)
    cols = (grid.lon > west + cells * dlon) & (grid.lon < east - cells * dlon)
    return rows[:, None] & cols[None, :]


# ----------------------------------------------------------------------------- kernel
def test_cubic_kernel_known_values_and_partition_of_unity():
    assert cubic_kernel([0, 1, 2, 3]).tolist() == [1, 0, 0, 0]
    np.testing.assert_allclose(cubic_kernel([0.5, 1.5, -0.5]), [0.5625, -0.0625, 0.5625])
    f = np.linspace(0, 1, 11)
    w = cubic_kernel(np.stack([f + 1, f, 1 - f, 2 - f]))
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)


def test_axis_weights_by_hand():
    src = np.array([0.5, 1.5, 2.5, 3.5])  # edges 0..4
    dst = np.array([-0.2, 0.5, 1.0, 1.25, 3.9, 4.0])
    nn = axis_weights(src, dst, "nearest")
    # 1.0 lies on the edge between cells 0 and 1: the tie goes to the higher index
    assert nn.index[:, 0].tolist()[1:5] == [0, 1, 1, 3]
    assert nn.inside.tolist() == [False, True, True, True, True, False]
    bl = axis_weights(src, dst, "bilinear")
    m = bl.matrix()
    np.testing.assert_allclose(m[2], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(m[3], [0.25, 0.75, 0, 0])
    np.testing.assert_allclose(m[4], [0, 0, 0, 1])  # beyond the last centre: held constant
    assert not m[[0, 5]].any()
    # descending axis (latitude): ties go to the higher index = south
    lat = np.array([3.5, 2.5, 1.5, 0.5])
    assert axis_weights(lat, [3.0, 2.0], "nearest", descending=True).index[:, 0].tolist() == [1, 2]
    # a south-up source gives the same cells (indices into the given order)
    up = axis_weights(lat[::-1], [3.0, 2.0], "nearest", descending=True)
    assert up.index[:, 0].tolist() == [2, 1]


def test_irregular_axis_is_rejected_with_its_name():
    lat = np.array([37.0, 36.9, 36.7, 36.6])
    with pytest.raises(ValueError, match="lat is not a regular axis"):
        Regridder(lat, np.arange(100.5, 102.0, 0.1), TARGET)
    with pytest.raises(ValueError, match="unknown regrid method"):
        Regridder(lat, lat, TARGET, "spline")


# ----------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("src", ["0.1", "cmorph", "ties"])
def test_constant_stays_constant(method, src):
    lat, lon = SOURCES[src]
    out = Regridder(lat, lon, TARGET, method)(np.full((2, lat.size, lon.size), 3.7, "f4"))
    np.testing.assert_allclose(out, 3.7, rtol=2e-6)


@pytest.mark.parametrize("method", ["bilinear", "cubic"])
@pytest.mark.parametrize("src", ["0.1", "0.25", "cmorph"])
def test_linear_field_is_reproduced(method, src):
    lat, lon = SOURCES[src]
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    field = (2.0 + 0.8 * (lon2 - 101) - 1.7 * (lat2 - 36)).astype("f4")
    out = Regridder(lat, lon, TARGET, method)(field)
    tlat, tlon = np.meshgrid(TARGET.lat, TARGET.lon, indexing="ij")
    expect = 2.0 + 0.8 * (tlon - 101) - 1.7 * (tlat - 36)
    ok = interior(lat, lon, TARGET, 2)
    assert ok.sum() > 1000
    np.testing.assert_allclose(out[ok], expect[ok], atol=2e-5)


def test_target_outside_the_source_is_nan():
    lat, lon = src_axes(0.1, west=100.5, east=101.3, north=37.0, south=36.2)
    out = Regridder(lat, lon, TARGET, "bilinear")(np.ones((lat.size, lon.size)))
    assert np.isfinite(out[np.ix_(TARGET.lat > 36.2, TARGET.lon < 101.3)]).all()
    assert np.isnan(out[:, TARGET.lon > 101.3]).all()
    assert np.isnan(out[TARGET.lat < 36.2]).all()


# ----------------------------------------------------------------------------- against GDAL
@pytest.mark.parametrize("src", sorted(SOURCES))
@pytest.mark.parametrize("method", METHODS)
def test_matches_gdal(src, method):
    pytest.importorskip("rioxarray")
    lat, lon = SOURCES[src]
    rng = np.random.default_rng(len(src))
    values = (rng.gamma(0.6, 4.0, (2, lat.size, lon.size))).astype("f4")
    ours = Regridder(lat, lon, TARGET, method)(values)
    ref = gdal(values, lat, lon, TARGET, method)
    if method == "nearest":
        np.testing.assert_array_equal(ours, ref)  # identical, ties included
        if src == "ties":
            # lon 101.005 lies on the edge between source columns 24 and 25, lat 36.485 on
            # the edge between rows 25 and 26: both pick the east / south cell
            assert ours[0, 0, 0] == values[0, 25, 25]
            assert ours[0, 1, 0] == values[0, 26, 25]
    else:
        ok = interior(lat, lon, TARGET, 2)
        tol = 1e-4 * float(values.max() - values.min())
        assert np.abs(ours[:, ok] - ref[:, ok]).max() <= tol


# ----------------------------------------------------------------------------- NaN rule
def small_source():
    """4 x 4 source cells of 0.1 deg; target cells of 0.05 deg (centres at 1/4, 3/4)."""
    lat = 36.35 - np.arange(4) * 0.1
    lon = 101.05 + np.arange(4) * 0.1
    grid = Grid(101.0, 36.0, 101.4, 36.4, 0.05)
    return lat, lon, grid


def test_nan_rule_nearest_and_bilinear_by_hand():
    lat, lon, grid = small_source()
    x = np.arange(16, dtype="f4").reshape(4, 4)
    x[1, 1] = np.nan
    nn = Regridder(lat, lon, grid, "nearest")(x)
    assert np.isnan(nn).sum() == 4 and np.isnan(nn[2:4, 2:4]).all()
    for method in ("bilinear", "cubic"):
        out = Regridder(lat, lon, grid, method)(x)
        # NaN exactly where the containing source cell is NaN, as nearest gives
        np.testing.assert_array_equal(np.isnan(out), np.isnan(nn))
    bl = Regridder(lat, lon, grid, "bilinear")(x)
    # target (row 4, col 4) lies in source cell (2, 2), 1/4 cell from its centre towards
    # the NaN cell (1, 1): weights 1/16 on (1, 1), 3/16 on (1, 2) and (2, 1), 9/16 on
    # (2, 2) -> the NaN weight is dropped and the rest renormalized
    expect = (3 * x[1, 2] + 3 * x[2, 1] + 9 * x[2, 2]) / 15
    np.testing.assert_allclose(bl[4, 4], expect, rtol=1e-6)
    # (row 1, col 1) lies in (0, 0), 1/4 cell towards (1, 1)
    np.testing.assert_allclose(bl[1, 1], (9 * x[0, 0] + 3 * x[0, 1] + 3 * x[1, 0]) / 15, rtol=1e-6)
    # a single valid cell: finite only where it contains the target centre
    y = np.full((4, 4), np.nan, "f4")
    y[0, 0] = 1.0
    out = Regridder(lat, lon, grid, "bilinear")(y)
    assert np.isfinite(out[:2, :2]).all() and np.isnan(out).sum() == out.size - 4
    np.testing.assert_array_equal(out[:2, :2], 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_nan_outside_the_footprint_or_everywhere(method):
    lat, lon = SOURCES["0.1"]
    rng = np.random.default_rng(4)
    x = rng.random((3, lat.size, lon.size)).astype("f4")
    rg = Regridder(lat, lon, TARGET, method)
    clean = rg(x)
    x[0, 0, :] = np.nan  # 36.95 N: 4.5 source cells north of the target, never read
    x[1] = np.nan  # a day without data
    out = rg(x)
    np.testing.assert_array_equal(out[0], clean[0])
    assert np.isnan(out[1]).all()
    np.testing.assert_array_equal(out[2], clean[2])


def test_nan_rule_cubic_falls_back_to_bilinear_near_nan():
    lat, lon = SOURCES["0.1"]
    rng = np.random.default_rng(3)
    x = rng.random((lat.size, lon.size)).astype("f4")
    full_cubic = Regridder(lat, lon, TARGET, "cubic")(x)
    x_nan = x.copy()
    x_nan[6, 8] = np.nan  # lat 36.35, lon 101.35: inside the target
    cub = Regridder(lat, lon, TARGET, "cubic")(x_nan)
    lin = Regridder(lat, lon, TARGET, "bilinear")(x_nan)
    nan_area = np.isnan(Regridder(lat, lon, TARGET, "nearest")(x_nan))
    assert nan_area.sum() == 100  # the 10 x 10 target cells inside the NaN source cell
    np.testing.assert_array_equal(np.isnan(cub), nan_area)
    np.testing.assert_array_equal(np.isnan(lin), nan_area)
    # cells whose 4 x 4 footprint contains the NaN take the bilinear value
    wy = axis_weights(lat, TARGET.lat, "cubic", descending=True)
    wx = axis_weights(lon, TARGET.lon, "cubic")
    touch_y = ((wy.index == 6) & (wy.weight != 0)).any(axis=1)
    touch_x = ((wx.index == 8) & (wx.weight != 0)).any(axis=1)
    touch = touch_y[:, None] & touch_x[None, :]
    assert 0 < touch.sum() < touch.size
    np.testing.assert_array_equal(cub[touch & ~nan_area], lin[touch & ~nan_area])
    np.testing.assert_allclose(cub[~touch], full_cubic[~touch], rtol=1e-6)


# ----------------------------------------------------------------------------- blocks, dask
@pytest.mark.parametrize("method", METHODS)
def test_chunked_equals_unchunked_and_points_equal_grid(method):
    lat, lon = SOURCES["cmorph"]
    rng = np.random.default_rng(5)
    x = rng.random((7, lat.size, lon.size)).astype("f4")
    x[2, 10:12, 5:9] = np.nan
    rg = Regridder(lat, lon, TARGET, method)
    whole = rg(x)
    parts = np.concatenate([rg(x[:3]), rg(x[3:4]), rg(x[4:])])
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(rg(x, threads=3), whole)
    rows = rng.integers(0, TARGET.nlat, 40)
    cols = rng.integers(0, TARGET.nlon, 40)
    pts = rg.at_points(x, rows, cols)
    np.testing.assert_allclose(pts, whole[:, rows, cols], rtol=1e-5, atol=1e-6)


def test_dask_equals_eager_and_dataset_variables():
    pytest.importorskip("dask")
    lat, lon = SOURCES["0.25"]
    rng = np.random.default_rng(9)
    times = np.arange("2020-01-01", "2020-01-06", dtype="datetime64[D]").astype("datetime64[ns]")
    shape = (times.size, lat.size, lon.size)
    u = rng.normal(0, 3, shape).astype("f4")
    v = rng.normal(0, 3, shape).astype("f4")
    ds = xr.Dataset(
        {
            "u10": (("time", "lat", "lon"), u),
            "v10": (("time", "lat", "lon"), v),
            "wd": (("time", "lat", "lon"), wind_direction(u, v).astype("f4")),
            "n_pixels": (("time", "lat", "lon"), rng.integers(0, 9, shape).astype("f4")),
            "station_count": (("time",), np.arange(times.size)),
            "lat_bnds": (("lat", "nv"), np.stack([lat + 0.125, lat - 0.125], axis=1)),
        },
        coords={"time": times, "lat": lat, "lon": lon},
    )
    eager = regrid(ds, TARGET, "bilinear")
    lazy = regrid(ds.chunk({"time": 2}), TARGET, "bilinear")
    assert lazy["u10"].chunks is not None
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert list(eager.data_vars) == [v for v in ds.data_vars if v != "lat_bnds"]
    assert eager["u10"].shape == (times.size,) + TARGET.shape
    np.testing.assert_array_equal(eager["lat"], TARGET.lat)
    np.testing.assert_array_equal(eager["station_count"], ds["station_count"])
    # counts by nearest: still whole numbers taken from the source
    counts = eager["n_pixels"].values
    np.testing.assert_array_equal(counts, np.round(counts))
    np.testing.assert_array_equal(
        counts, Regridder(lat, lon, TARGET, "nearest")(ds["n_pixels"].values)
    )
    # wind direction recomputed from the regridded components
    np.testing.assert_allclose(
        eager["wd"], wind_direction(eager["u10"], eager["v10"]), rtol=1e-5, atol=1e-4
    )
    # apply_ufunc with dask="parallelized" over time chunks, as a user would write it
    rg = Regridder(lat, lon, TARGET, "cubic")
    res = xr.apply_ufunc(
        rg,
        ds["u10"].chunk({"time": 1}),
        input_core_dims=[["lat", "lon"]],
        output_core_dims=[["y", "x"]],
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"y": TARGET.nlat, "x": TARGET.nlon}},
    )
    np.testing.assert_array_equal(res.values, rg(u))


def test_wind_direction_convention():
    # from the north (blowing south), from the west (blowing east), from the south-east
    np.testing.assert_allclose(wind_direction([0, 1, -1], [-1, 0, 1]), [0, 270, 135])


def test_regrid_at_points_and_south_up_sources():
    lat, lon = SOURCES["0.1"]
    rng = np.random.default_rng(2)
    da = xr.DataArray(
        rng.random((3, lat.size, lon.size)).astype("f4"),
        dims=("time", "latitude", "longitude"),
        coords={"latitude": lat, "longitude": lon},
        name="precip",
    )
    full = regrid(da, TARGET, "cubic")
    flipped = regrid(da.isel(latitude=slice(None, None, -1)), TARGET, "cubic")
    np.testing.assert_allclose(full.values, flipped.values, rtol=1e-6, atol=1e-6)
    rows, cols = np.array([0, 10, 49]), np.array([59, 3, 30])
    pts = regrid_at_points(da, TARGET, rows, cols, "cubic")
    np.testing.assert_allclose(pts, full.values[:, rows, cols], rtol=1e-5)
    with pytest.raises(ValueError, match="spatial shape"):
        Regridder(lat, lon, TARGET)(np.zeros((2, 3)))


# ----------------------------------------------------------------------------- real data
@pytest.mark.parametrize("method", METHODS)
def test_real_chirps_with_nodata_matches_gdal(realdata, method):
    """CHIRPS 0.05 deg daily fields (Valparaiso, ocean cells nodata) to 0.01 deg: ours on
    the converted NetCDF against GDAL warping the original GeoTIFF with its nodata."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    folder = realdata / "rfmerge_valparaiso"
    bands = [1, 2, 3, 100, 150]
    with rasterio.open(folder / "original" / "CHIRPS5km.tif") as src:
        raw, transform, nodata = src.read(indexes=bands), src.transform, src.nodata
    with xr.open_dataset(folder / "converted" / "CHIRPS5km.nc") as ds:
        da = ds["precip"].isel(time=[b - 1 for b in bands]).load()
    assert np.isnan(da.values).any()  # ocean cells
    grid = Grid(-71.6, -33.8, -70.2, -32.2, 0.01)
    ref = np.full((len(bands),) + grid.shape, np.nan, dtype="f4")
    reproject(
        raw,
        ref,
        src_transform=transform,
        src_crs="EPSG:4326",
        src_nodata=nodata,
        dst_transform=grid.transform,
        dst_crs="EPSG:4326",
        dst_nodata=np.nan,
        resampling=getattr(Resampling, method),
    )
    ours = regrid(da, grid, method).values
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    assert np.isnan(ours).mean() > 0.02  # the coast crosses the target grid
    if method == "nearest":
        np.testing.assert_array_equal(ours, ref)
    else:
        tol = 1e-4 * float(np.nanmax(da.values) - np.nanmin(da.values))
        np.testing.assert_allclose(ours, ref, rtol=0, atol=tol)
