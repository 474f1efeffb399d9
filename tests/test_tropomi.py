"""TROPOMI L2 SO2: reader on the real group layout, screening, footprint binning, daily grid."""

from __future__ import annotations

import datetime as dt

import netCDF4
import numpy as np
import pandas as pd
import pytest

from gridfuse.grid import Grid
from gridfuse.sources import tropomi as tr

FILL = np.float32(9.96921e36)


def _quads(lon0, lat0, dlon, dlat, ns, ng):
    """Corners (ns, ng, 4) of an axis-aligned pixel mesh, counter-clockwise from south-west."""
    lo = lon0 + dlon * np.arange(ng)[None, :].repeat(ns, 0)
    la = lat0 + dlat * np.arange(ns)[:, None].repeat(ng, 1)
    lon_b = np.stack([lo, lo + dlon, lo + dlon, lo], -1)
    lat_b = np.stack([la, la, la + dlat, la + dlat], -1)
    return lon_b, lat_b


def write_real_layout(path, col, qa, cloud, lon_b, lat_b, t0="2019-08-25", delta_ms=None):
    """An L2 file written directly with netCDF4 in the layout of the real OFFL product.

    Independent of gridfuse's writer: qa_value as uint8 with scale_factor 0.01, columns with the
    product's 9.96921e36 fill value, time in seconds since 2010-01-01, delta_time per scanline.
    """
    ns, ng = col.shape
    with netCDF4.Dataset(path, "w") as nc:
        nc.orbit = np.int32(9658)
        p = nc.createGroup("PRODUCT")
        p.createDimension("time", 1)
        p.createDimension("scanline", ns)
        p.createDimension("ground_pixel", ng)
        p.createDimension("corner", 4)
        p.createDimension("layer", 34)
        t = p.createVariable("time", "i4", ("time",))
        t.units = "seconds since 2010-01-01 00:00:00"
        t[:] = int((pd.Timestamp(t0) - pd.Timestamp("2010-01-01")).total_seconds())
        d = p.createVariable("delta_time", "i4", ("time", "scanline"))
        d.units = f"milliseconds since {t0} 00:00:00"
        d[0] = delta_ms if delta_ms is not None else 5 * 3600 * 1000 + np.arange(ns) * 840
        dims = ("time", "scanline", "ground_pixel")
        for name in ("latitude", "longitude"):
            v = p.createVariable(name, "f4", dims)
            v[0] = (lat_b if name == "latitude" else lon_b).mean(-1)
        q = p.createVariable("qa_value", "u1", dims, fill_value=np.uint8(255))
        q.scale_factor = np.float32(0.01)
        q.add_offset = np.float32(0)
        q[0] = qa
        c = p.createVariable(
            "sulfurdioxide_total_vertical_column", "f4", dims, fill_value=FILL, zlib=True
        )
        c.units = "mol m-2"
        c.multiplication_factor_to_convert_to_DU = np.float32(2241.15)
        c[0] = np.where(np.isnan(col), FILL, col)
        s = p.createGroup("SUPPORT_DATA")
        g = s.createGroup("GEOLOCATIONS")
        for name, arr in (("latitude_bounds", lat_b), ("longitude_bounds", lon_b)):
            v = g.createVariable(name, "f4", dims + ("corner",))
            v[0] = arr
        sza = g.createVariable("solar_zenith_angle", "f4", dims)
        sza[0] = np.full(col.shape, 30.0)
        det = s.createGroup("DETAILED_RESULTS")
        v = det.createVariable("sulfurdioxide_total_vertical_column_1km", "f4", dims)
        v[0] = np.nan_to_num(col)
        inp = s.createGroup("INPUT_DATA")
        v = inp.createVariable("cloud_fraction_crb", "f4", dims, fill_value=FILL)
        v[0] = cloud
    return path


@pytest.fixture
def l2file(tmp_path):
    ns, ng = 6, 5
    lon_b, lat_b = _quads(112.0, 37.0, 0.04, 0.05, ns, ng)
    col = np.full((ns, ng), 2e-4, dtype="f4")
    qa = np.full((ns, ng), 1.0)
    cloud = np.zeros((ns, ng), "f4")
    qa[0, 0] = 0.4  # screened by qa
    cloud[1, 1] = 0.6  # cloudy
    col[2, 2] = -0.003  # negative outlier
    col[3, 3] = -0.0005  # negative noise, kept
    col[4, 4] = np.nan  # fill value
    name = tr.l2_filename(
        dt.datetime(2019, 8, 25, 3, 2, 59), dt.datetime(2019, 8, 25, 4, 44, 28), 9658
    )
    return write_real_layout(tmp_path / name, col, qa, cloud, lon_b, lat_b), (lon_b, lat_b)


def test_filename_roundtrip():
    name = "S5P_OFFL_L2__SO2____20190825T030259_20190825T044428_09658_01_010107_20190831T141543.nc"
    info = tr.parse_l2_filename(name)
    assert info["orbit"] == 9658 and info["start"] == pd.Timestamp("2019-08-25 03:02:59")
    assert tr.l2_filename(info["start"], info["end"], 9658, production=info["production"]) == name
    with pytest.raises(ValueError, match="not_a_file.nc"):
        tr.parse_l2_filename("not_a_file.nc")


def test_reader_real_layout_and_filters(l2file):
    path, _ = l2file
    pix = tr.read_l2(path)
    assert pix.counts == {
        "pixels": 30,
        "missing": 1,
        "qa": 1,
        "cloud": 1,
        "negative_outlier": 1,
        "valid": 26,
    }
    assert pix.size == 26
    assert np.isclose(pix.column.min(), -0.0005)  # noise kept
    # time = 2019-08-25 + 5 h + scanline * 0.84 s
    assert pix.time.min() == np.datetime64("2019-08-25T05:00:00")
    assert pix.time.max() == np.datetime64("2019-08-25T05:00:04.200")
    # filters can be relaxed
    relaxed = tr.read_l2(path, qa_min=0.0, cloud_max=None, column_min=None)
    assert relaxed.size == 29


def test_reader_bbox_subsets(l2file):
    path, (lon_b, lat_b) = l2file
    # a box touching only the last two scanlines (lat 37.20..37.30)
    pix = tr.read_l2(path, bbox=(111.0, 37.21, 113.0, 38.0))
    assert pix.size == 10 - 1  # two scanlines of 5, minus the NaN pixel (4, 4)
    assert pix.lat_bounds.max() == pytest.approx(37.30, abs=1e-5)
    assert tr.read_l2(path, bbox=(0.0, 0.0, 1.0, 1.0)).size == 0


def test_reader_errors_name_the_file(tmp_path, l2file):
    with pytest.raises(FileNotFoundError, match="no_such.nc"):
        tr.read_l2(tmp_path / "no_such.nc")
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(b"this is not netcdf")
    with pytest.raises(OSError, match="corrupt.nc"):
        tr.read_l2(corrupt)
    nogroup = tmp_path / "flat.nc"
    with netCDF4.Dataset(nogroup, "w") as nc:
        nc.createDimension("x", 2)
    with pytest.raises(ValueError, match="flat.nc.*PRODUCT"):
        tr.read_l2(nogroup)
    path, _ = l2file
    with netCDF4.Dataset(path, "a") as nc:
        nc["PRODUCT"].renameVariable("qa_value", "quality")
    with pytest.raises(ValueError, match=f"{path.name}.*qa_value"):
        tr.read_l2(path)


def test_subpoints_and_area():
    lon_b, lat_b = _quads(0.0, 0.0, 1.0, 1.0, 1, 1)
    x, y = tr.quad_subpoints(lon_b.reshape(1, 4), lat_b.reshape(1, 4), 2)
    assert sorted(zip(x[0], y[0])) == [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]
    # 1 deg x 1 deg at the equator: (pi/180 * R)^2 km2
    a = tr.pixel_areas_km2(lon_b.reshape(1, 4), lat_b.reshape(1, 4))
    assert a[0] == pytest.approx((np.pi / 180 * 6371.0088) ** 2, rel=1e-4)


def test_binning_constant_field_and_counts():
    grid = Grid(112.0, 37.0, 112.2, 37.2, 0.05)  # 4 x 4 cells
    # rotated, irregular pixels covering the grid: a constant field must bin to the constant
    rng = np.random.default_rng(0)
    lon_b, lat_b = _quads(111.95, 36.95, 0.033, 0.047, 8, 10)
    ang = np.deg2rad(14)
    cx, cy = 112.1, 37.1
    x, y = lon_b - cx, lat_b - cy
    lon_r = cx + x * np.cos(ang) - y * np.sin(ang)
    lat_r = cy + x * np.sin(ang) + y * np.cos(ang)
    vals = np.full(lon_r.shape[:2], 3.5e-4)
    w, v, n = tr.bin_pixels(vals.ravel(), lon_r.reshape(-1, 4), lat_r.reshape(-1, 4), grid)
    covered = w > 0
    assert covered.any()
    np.testing.assert_allclose(v[covered] / w[covered], 3.5e-4, rtol=1e-12)
    # weights of a fully covered cell add up to its area
    area_cell = (0.05 * np.pi / 180 * 6371.0088) ** 2 * np.cos(np.deg2rad(37.125))
    assert w[1, 1] == pytest.approx(area_cell, rel=0.05)
    del rng


def test_binning_counts_known_layout():
    # pixels exactly 2 x 1 cells, aligned: every cell is overlapped by exactly one pixel
    grid = Grid(0.0, 0.0, 0.4, 0.2, 0.1)  # 2 rows x 4 cols
    lon_b, lat_b = _quads(0.0, 0.0, 0.2, 0.1, 2, 2)
    vals = np.array([1.0, 2.0, 3.0, 4.0])  # scanline-major: (s0,g0), (s0,g1), (s1,g0), (s1,g1)
    w, v, n = tr.bin_pixels(vals, lon_b.reshape(-1, 4), lat_b.reshape(-1, 4), grid, n_sub=4)
    np.testing.assert_array_equal(n, np.ones((2, 4)))
    # row 0 is the north row = scanline 1
    np.testing.assert_allclose(v / w, [[3, 3, 4, 4], [1, 1, 2, 2]])
    # a pixel straddling 4 cells is counted once in each; centre binning counts it once
    lon_b, lat_b = _quads(0.05, 0.05, 0.1, 0.1, 1, 1)
    w, v, n = tr.bin_pixels(
        np.array([5.0]), lon_b.reshape(-1, 4), lat_b.reshape(-1, 4), grid, n_sub=4
    )
    assert n.sum() == 4 and n[0, 0] == n[0, 1] == n[1, 0] == n[1, 1] == 1
    np.testing.assert_allclose(w[n > 0], w[n > 0][0], rtol=1e-3)  # equal quarters
    w, v, n = tr.bin_pixels(
        np.array([5.0]), lon_b.reshape(-1, 4), lat_b.reshape(-1, 4), grid, method="centre"
    )
    # its centre (0.1, 0.1) lies on a corner: it goes to the cell east / south of it
    assert n.sum() == 1 and n[1, 1] == 1 and v[1, 1] == 5.0
    with pytest.raises(ValueError, match="binning method"):
        tr.bin_pixels(np.array([5.0]), lon_b.reshape(-1, 4), lat_b.reshape(-1, 4), grid, method="x")


def test_area_weighted_mean_matches_overlap_areas():
    # two pixels of different values overlapping one cell 1/4 and 3/4: mean is the area mix
    grid = Grid(0.0, 0.0, 0.1, 0.1, 0.1)
    lon_b = np.array([[-0.075, 0.025, 0.025, -0.075], [0.025, 0.125, 0.125, 0.025]])
    lat_b = np.array([[0.0, 0.0, 0.1, 0.1], [0.0, 0.0, 0.1, 0.1]])
    w, v, n = tr.bin_pixels(np.array([0.0, 4.0]), lon_b, lat_b, grid, n_sub=20)
    assert n[0, 0] == 2
    assert (v / w)[0, 0] == pytest.approx(3.0, rel=1e-3)


def test_product_day():
    t = np.array(["2018-08-31T15:59", "2018-08-31T16:00", "2018-09-01T05:30"], dtype="M8[ns]")
    np.testing.assert_array_equal(
        tr.product_day(t, 16), np.array(["2018-08-31", "2018-09-01", "2018-09-01"], "M8[D]")
    )
    np.testing.assert_array_equal(
        tr.product_day(t, 0), np.array(["2018-08-31", "2018-08-31", "2018-09-01"], "M8[D]")
    )


def test_grid_daily_from_files(tmp_path):
    grid = tr.native_grid(Grid(112.0, 37.0, 112.2, 37.2, 0.01), 0.05, 0.0)
    assert grid.shape == (4, 4)
    lon_b, lat_b = _quads(112.0, 37.0, 0.05, 0.05, 4, 2)  # covers the west half
    files = []
    for day, value in (("2019-08-25", 1e-4), ("2019-08-27", 3e-4)):
        t = pd.Timestamp(day)
        name = tr.l2_filename(t + pd.Timedelta("5h"), t + pd.Timedelta("6h"), 1 + len(files))
        col = np.full((4, 2), value, "f4")
        files.append(
            write_real_layout(
                tmp_path / name, col, np.ones((4, 2)), np.zeros((4, 2)), lon_b, lat_b, t0=day
            )
        )
    days = pd.date_range("2019-08-25", "2019-08-27")
    ds = tr.grid_daily(files, grid, days, utc_start_hour=16)
    assert ds.so2_column.dims == ("time", "lat", "lon")
    assert np.isnan(ds.so2_column.isel(time=1)).all()  # no overpass
    np.testing.assert_allclose(ds.so2_column.isel(time=0, lon=slice(0, 2)), 1e-4, rtol=1e-6)
    assert np.isnan(ds.so2_column.isel(time=0, lon=slice(2, 4))).all()
    np.testing.assert_allclose(ds.so2_column.isel(time=2, lon=slice(0, 2)), 3e-4, rtol=1e-6)
    assert int(ds.n_pixels.isel(time=0).sum()) == 8
    assert ds.attrs["pixels_valid"] == 16


def test_writer_roundtrip(tmp_path):
    lon_b, lat_b = _quads(100.0, 30.0, 0.05, 0.03, 3, 4)
    col = np.arange(12, dtype="f4").reshape(3, 4) * 1e-5
    col[0, 0] = np.nan
    qa = np.full((3, 4), 0.84)
    cf = np.full((3, 4), 0.1)
    cf[2, 3] = 0.5
    path = tmp_path / tr.l2_filename(dt.datetime(2020, 1, 1, 5), dt.datetime(2020, 1, 1, 6), 11623)
    tr.write_l2(
        path,
        column=col,
        lon_bounds=lon_b,
        lat_bounds=lat_b,
        qa_value=qa,
        cloud_fraction=cf,
        reference_time=np.datetime64("2020-01-01"),
        delta_time_ms=np.arange(3) * 1000 + 5 * 3600 * 1000,
        orbit=11623,
    )
    pix = tr.read_l2(path)
    assert pix.counts["missing"] == 1 and pix.counts["cloud"] == 1 and pix.size == 10
    np.testing.assert_allclose(np.sort(pix.column), np.sort(col.ravel()[1:11]), rtol=1e-6)
    with netCDF4.Dataset(path) as nc:
        q = nc["PRODUCT/qa_value"]
        assert q.dtype == np.uint8 and q[0, 0, 0] == pytest.approx(0.84)
        assert "DETAILED_RESULTS" in nc["PRODUCT/SUPPORT_DATA"].groups


def test_grid_daily_combines_orbits_of_a_day_in_any_order(tmp_path):
    grid = Grid(112.0, 37.0, 112.1, 37.1, 0.05)
    lon_b, lat_b = _quads(112.0, 37.0, 0.05, 0.05, 2, 2)
    files = []
    for k, (start, value) in enumerate(
        (("2019-08-25 04:00", 1e-4), ("2019-08-25 05:40", 3e-4), ("2019-08-26 05:00", 5e-4))
    ):
        t = pd.Timestamp(start)
        name = tr.l2_filename(t, t + pd.Timedelta("100min"), 100 + k)
        ms = int((t - t.normalize()) / pd.Timedelta("1ms"))
        files.append(
            write_real_layout(
                tmp_path / name,
                np.full((2, 2), value, "f4"),
                np.ones((2, 2)),
                np.zeros((2, 2)),
                lon_b,
                lat_b,
                t0=str(t.date()),
                delta_ms=ms + np.arange(2) * 1000,
            )
        )
    days = pd.date_range("2019-08-25", periods=2)
    ds = tr.grid_daily(files[::-1], grid, days, utc_start_hour=0)
    np.testing.assert_allclose(ds.so2_column.isel(time=0), 2e-4, rtol=1e-5)
    np.testing.assert_array_equal(ds.n_pixels.isel(time=0), 2)
    np.testing.assert_allclose(ds.so2_column.isel(time=1), 5e-4, rtol=1e-5)
    assert ds.n_pixels.dtype == np.int16 and ds.so2_column.dtype == np.float32
