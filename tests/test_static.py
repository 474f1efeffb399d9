"""Static layers: resampling by quantity (average, mode/nearest, count to density), slope, files."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gridfuse.grid import Grid
from gridfuse.io import write_geotiff
from gridfuse.static import build_static, read_layer, slope_degrees, warp

TARGET = Grid(112.0, 37.0, 112.04, 37.04, 0.01)  # 4 x 4
FINE = Grid(112.0, 37.0, 112.04, 37.04, 0.0025)  # 16 x 16, 4 x 4 sub-pixels per target cell


def _block(a, k=4):
    n, m = a.shape
    return a.reshape(n // k, k, m // k, k)


def test_continuous_average_matches_block_means(tmp_path):
    rng = np.random.default_rng(1)
    dem = rng.uniform(1000, 2000, FINE.shape)
    path = write_geotiff(dem, tmp_path / "dem.tif", grid=FINE)
    out = warp(read_layer(path), TARGET, "continuous")
    np.testing.assert_allclose(out, _block(dem).mean(axis=(1, 3)), rtol=1e-5)


def test_categorical_mode_and_nearest(tmp_path):
    lc = np.full(FINE.shape, 10.0)
    b = _block(lc)
    b[0, :, 0, :] = 7.0  # cell (0,0) all class 7
    b[1, :3, 1, :] = 3.0  # cell (1,1): 12 of 16 sub-pixels class 3 -> majority 3
    path = write_geotiff(lc, tmp_path / "lc.tif", grid=FINE)
    out = warp(read_layer(path), TARGET, "categorical")
    assert out[0, 0] == 7 and out[1, 1] == 3 and out[3, 3] == 10
    assert set(np.unique(out)) <= {3.0, 7.0, 10.0}  # never an average of classes
    # coarse -> fine: nearest, classes preserved blockwise
    coarse = np.arange(4.0).reshape(2, 2)
    cgrid = Grid(112.0, 37.0, 112.04, 37.04, 0.02)
    path = write_geotiff(coarse, tmp_path / "lc2.tif", grid=cgrid)
    out = warp(read_layer(path), TARGET, "categorical")
    np.testing.assert_array_equal(out, np.kron(coarse, np.ones((2, 2))))


def test_population_count_sums_then_density(tmp_path):
    pop = np.zeros(FINE.shape)
    pop[0, 0] = 1600.0  # persons in one fine pixel of target cell (0, 0)
    pop[5:8, 5:8] = 100.0  # 900 persons in cell (1, 1)
    path = write_geotiff(pop, tmp_path / "pop.tif", grid=FINE)
    out = warp(read_layer(path), TARGET, "count")
    lat = TARGET.lat
    area = (0.01 * 111.320 * np.cos(np.deg2rad(lat))) * (0.01 * 110.574)  # km2 per target row
    assert out[0, 0] == pytest.approx(1600 / area[0], rel=1e-3)
    assert out[1, 1] == pytest.approx(900 / area[1], rel=1e-3)
    # total persons conserved
    assert (out * area[:, None]).sum() == pytest.approx(pop.sum(), rel=1e-3)


def test_slope_of_a_plane():
    # elevation rising 100 m per 0.01 deg of latitude northwards: slope atan(100 / 1105.74)
    g = Grid(112.0, 37.0, 112.1, 37.1, 0.01)
    elev = 100.0 * (np.arange(10)[::-1, None] * np.ones((1, 10)))
    s = slope_degrees(elev, g.transform, geographic=True)
    np.testing.assert_allclose(s, np.degrees(np.arctan(100 / 1105.74)), rtol=1e-6)
    assert slope_degrees(np.ones((5, 5)), g.transform).max() == 0


def test_build_static_all_layers(tmp_path):
    rng = np.random.default_rng(2)
    dem = write_geotiff(rng.uniform(800, 900, FINE.shape), tmp_path / "dem.tif", grid=FINE)
    lc = write_geotiff(np.full(FINE.shape, 12.0), tmp_path / "lc.tif", grid=FINE, gz=True)
    # NDVI as a NetCDF with ascending latitude and MODIS-style scaling
    ndvi = xr.DataArray(
        np.full(TARGET.shape[::-1], 5000.0)[:, :],
        dims=("lat", "lon"),
        coords={"lat": TARGET.lat[::-1], "lon": TARGET.lon},
    )
    ndvi[0, :] = 8000.0  # southernmost row
    ndvi.to_dataset(name="NDVI").to_netcdf(tmp_path / "ndvi.nc")
    roads = write_geotiff(np.full(TARGET.shape, 1.5), tmp_path / "roads.tif", grid=TARGET)
    ds = build_static(
        {
            "dem": str(dem),
            "landcover": {"path": str(lc)},
            "ndvi": {"path": str(tmp_path / "ndvi.nc"), "scale": 1e-4},
            "population": {"path": ""},
            "road_density": {"path": str(roads)},
        },
        TARGET,
    )
    assert list(ds.data_vars) == ["elevation", "slope", "landcover", "ndvi", "road_density"]
    assert ds.lat.values[0] > ds.lat.values[-1]
    assert ds.elevation.shape == TARGET.shape and ds.elevation.attrs["units"] == "m"
    assert float(ds.slope.min()) > 0
    np.testing.assert_array_equal(ds.landcover, 12.0)
    np.testing.assert_allclose(ds.ndvi.isel(lat=-1), 0.8, rtol=1e-5)  # south row, flipped
    np.testing.assert_allclose(ds.ndvi.isel(lat=0), 0.5, rtol=1e-5)
    np.testing.assert_allclose(ds.road_density, 1.5, rtol=1e-6)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dem.tif"):
        build_static({"dem": str(tmp_path / "missing_dem.tif")}, TARGET)
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(OSError, match="broken.tif"):
        read_layer(bad)
    with pytest.raises(ValueError, match="dem"):
        build_static({"ndvi": str(bad)}, TARGET)
    with pytest.raises(ValueError, match="unknown static layer"):
        build_static({"dem": str(bad), "soil": str(bad)}, TARGET)
