import gzip

import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr

from gridfuse import io
from gridfuse.grid import Grid


@pytest.fixture
def grid():
    return Grid(100.0, 30.0, 100.6, 30.4, 0.1)


def _field(grid, ndays=3):
    da = grid.template(pd.date_range("2020-01-01", periods=ndays), name="precip")
    rng = np.random.default_rng(0)
    da.values[:] = rng.gamma(0.5, 2.0, da.shape).astype("f4")
    da.values[0, 0, 0] = np.nan
    return da


def test_netcdf_round_trip_cf_and_provenance(tmp_path, grid):
    da = _field(grid)
    path = io.write_netcdf(da, tmp_path / "p.nc", cfg={"a": 1}, sources=["era5", "imerg"])
    ds = io.read_netcdf(path, load=True)
    np.testing.assert_array_equal(ds["precip"].values, da.values)
    assert ds["precip"].dtype == np.float32
    assert ds["precip"].attrs["units"] == "mm day-1"
    assert ds["precip"].attrs["standard_name"]
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert ds.attrs["config_hash"] == io.config_hash({"a": 1})
    assert ds.attrs["sources"] == "era5, imerg"
    assert "gridfuse_version" in ds.attrs
    enc = xr.open_dataset(path)["precip"].encoding
    assert enc["zlib"] and enc["chunksizes"][0] == 1
    # GDAL reads it too (netCDF driver)
    with rasterio.open(f"netcdf:{path}:precip") as src:
        assert (src.height, src.width, src.count) == (4, 6, 3)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.nc"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_absent_marker(tmp_path):
    p = io.write_absent(
        tmp_path / "gsmap" / "1995.nc", source="gsmap", year=1995, reason="starts 1998"
    )
    assert io.is_absent(p)
    da = _field(Grid(0, 0, 1, 1, 0.5))
    q = io.write_netcdf(da, tmp_path / "x.nc")
    assert not io.is_absent(q)


@pytest.mark.parametrize("gz", [False, True])
def test_geotiff_cog_round_trip(tmp_path, grid, gz):
    da = _field(grid).isel(time=1)
    da.values[2, 3] = np.nan
    path = io.write_geotiff(da, tmp_path / "so2_20200101.tif", gz=gz)
    assert path.name.endswith(".tif.gz" if gz else ".tif")
    back = io.read_geotiff(path)
    np.testing.assert_array_equal(back.values, da.values)
    np.testing.assert_array_equal(back.lat.values, grid.lat)
    uri = f"/vsigzip/{path}" if gz else str(path)
    with rasterio.open(uri) as src:
        assert src.crs.to_epsg() == 4326
        assert src.nodata == -9999.0
        assert src.profile["compress"].lower() == "deflate"
        assert src.transform == grid.transform
    if gz:
        with gzip.open(path) as f:
            assert f.read(4) in (b"II*\x00", b"MM\x00*")
    else:
        r = rioxarray.open_rasterio(path).squeeze()
        np.testing.assert_allclose(r.x.values, grid.lon)
        from rasterio.shutil import exists

        assert exists(str(path))


def test_cog_layout_is_valid(tmp_path):
    g = Grid(0, 0, 12.0, 12.0, 0.01)  # 1200 x 1200: tiled with overviews
    da = g.template(name="so2")
    da.values[:] = 1.0
    path = io.write_geotiff(da, tmp_path / "big.tif")
    with rasterio.open(path) as src:
        assert src.profile["tiled"]
        assert src.overviews(1)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_reader_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"not a netcdf")
    with pytest.raises(OSError, match="broken.nc"):
        io.read_netcdf(bad)
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        io.read_geotiff(tmp_path / "missing.tif")
    with pytest.raises(ValueError, match="does not match grid"):
        io.write_geotiff(np.zeros((2, 2)), tmp_path / "x.tif", grid=Grid(0, 0, 1, 1, 0.1))


def test_values_at_cells_reads_only_what_it_needs_and_agrees_with_a_full_read(tmp_path):
    """values_at_cells (the product read of cross_validate_precip) returns exactly the full
    file's values at the cells, across storage chunks (512 rows) and time blocks."""
    ny, nx, nt = 600, 7, 5
    times = pd.date_range("2020-01-01", periods=nt).values
    rng = np.random.default_rng(1)
    data = rng.gamma(0.5, 2.0, (nt, ny, nx)).astype("f4")
    data[1, 3, 2] = np.nan
    path = io.write_netcdf_blocks(
        tmp_path / "p.nc",
        "precip",
        [(slice(0, 3), data[:3]), (slice(3, nt), data[3:])],
        times=times,
        lat=50.0 - 0.01 * np.arange(ny),
        lon=100.0 + 0.01 * np.arange(nx),
    )
    rows = np.array([3, 599, 0, 511, 512, 3])
    cols = np.array([2, 6, 0, 1, 1, 5])
    got_t, got = io.values_at_cells(path, "precip", rows, cols, time_block=2)
    np.testing.assert_array_equal(got_t, times.astype("datetime64[ns]"))
    np.testing.assert_array_equal(got, data[:, rows, cols])
    assert got.dtype == np.float32 and np.isnan(got[1, 0])
    with pytest.raises(KeyError, match="p.nc.*no variable 'so2'"):
        io.values_at_cells(path, "so2", rows, cols)
    with pytest.raises(ValueError, match="p.nc: cells outside its 600 x 7 grid"):
        io.values_at_cells(path, "precip", np.array([600]), np.array([0]))
