"""The one CF NetCDF writer: CF-1.8 compliance, CRS, day bounds, history, determinism,
permissions, stale temporaries and the quality layer."""

from __future__ import annotations

import gzip
import os
import stat
import time

import netCDF4
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from gridfuse import io, quality
from gridfuse.grid import Grid
from gridfuse.kinds import KINDS, get_kind

GRID = Grid(100.0, 30.0, 100.6, 30.4, 0.1)
DAYS = pd.date_range("2019-12-30", periods=4)


def _precip(grid=GRID, days=DAYS, name="precip"):
    da = grid.template(days, name=name)
    rng = np.random.default_rng(0)
    da.values[:] = rng.gamma(0.5, 2.0, da.shape).astype("f4")
    da.values[0, 0, 0] = np.nan
    return da


def _static(grid=GRID):
    el = grid.template(name="elevation")
    el.values[:] = 3000.0
    el.attrs.update(units="m", standard_name="surface_altitude", long_name="elevation")
    return el.to_dataset()


def _blocks(grid=GRID, days=DAYS, flags=False):
    rng = np.random.default_rng(1)
    for k0 in range(0, len(days), 3):
        n = len(days[k0 : k0 + 3])
        vals = rng.gamma(2.0, 3.0, (n,) + grid.shape).astype("f4")
        if flags:
            yield slice(k0, k0 + n), vals, np.full((n,) + grid.shape, 3, dtype="i1")
        else:
            yield slice(k0, k0 + n), vals


def _write_all(tmp_path) -> dict[str, object]:
    """One file of every NetCDF layout the workflow writes."""
    from gridfuse.sources.era5_met import ATTRS

    out = {}
    out["daily"] = io.write_netcdf(
        _precip(), tmp_path / "daily.nc", utc_start_hour=12, what="daily"
    )
    met = xr.Dataset(
        {k: (("time", "lat", "lon"), np.ones((len(DAYS),) + GRID.shape, "f4")) for k in ATTRS},
        coords={**GRID.coords(), "time": DAYS},
    )
    for k, (units, sn, ln) in ATTRS.items():
        met[k].attrs.update(units=units, standard_name=sn, long_name=ln)
    out["era5_met"] = io.write_netcdf(met, tmp_path / "met.nc", utc_start_hour=16)
    out["static"] = io.write_netcdf(_static(), tmp_path / "static.nc", what="static")
    out["product"] = io.write_netcdf_blocks(
        tmp_path / "product.nc",
        "so2",
        _blocks(flags=True),
        times=DAYS,
        lat=GRID.lat,
        lon=GRID.lon,
        utc_start_hour=16,
        flag_sources=["tropomi", "era5_met"],
        what="so2 product",
    )
    return out


def _cf_errors(path) -> list[str]:
    """High-priority failures of the IOOS compliance checker (cf:1.8)."""
    runner = pytest.importorskip("compliance_checker.runner")
    suite = runner.CheckSuite()
    suite.load_all_available_checkers()
    ds = suite.load_dataset(str(path))
    groups, errors = suite.run_all(ds, ["cf:1.8"], skip_checks=[])["cf:1.8"]
    # the checker's monotonicity check subtracts coordinate values and crashes on string
    # coordinates (samples/patches.nc: station, channel); any other crash is a failure
    errors = {
        k: v
        for k, v in errors.items()
        if not (k == "check_coordinate_variables_strict_monotonicity" and "str" in str(v[0]))
    }
    assert not errors, errors
    bad = []
    for r in groups:
        v = r.value
        ok = v[0] >= v[1] if isinstance(v, tuple) else bool(v)
        if not ok and r.weight >= 3:
            bad += [f"{r.name}: {m}" for m in r.msgs]
    return bad


def test_every_layout_passes_the_cf_checker(tmp_path):
    for kind, path in _write_all(tmp_path).items():
        assert _cf_errors(path) == [], kind


def test_crs_seen_by_gdal_and_rioxarray(tmp_path):
    import rioxarray  # noqa: F401

    files = _write_all(tmp_path)
    for key, var in (("daily", "precip"), ("static", "elevation"), ("product", "so2")):
        path = files[key]
        with rasterio.open(f"netcdf:{path}:{var}") as src:
            assert src.crs is not None and src.crs.to_epsg() == 4326, key
        with xr.open_dataset(path, decode_coords="all") as ds:
            assert ds[var].rio.crs.to_epsg() == 4326, key


def test_day_bounds_state_the_utc_window():
    b = io.day_bounds(pd.to_datetime(["2020-01-01"]), 12)
    epoch = pd.Timestamp("1970-01-01")
    assert epoch + pd.Timedelta(days=b[0, 0]) == pd.Timestamp("2019-12-31 12:00")
    assert epoch + pd.Timedelta(days=b[0, 1]) == pd.Timestamp("2020-01-01 12:00")
    b0 = io.day_bounds(pd.to_datetime(["2020-01-01"]), 0)
    assert epoch + pd.Timedelta(days=b0[0, 0]) == pd.Timestamp("2020-01-01")
    with pytest.raises(ValueError, match="utc_start_hour"):
        io.day_bounds(pd.to_datetime(["2020-01-01"]), 24)


@pytest.mark.parametrize("streamed", [False, True])
def test_time_bnds_in_files(tmp_path, streamed):
    path = tmp_path / "p.nc"
    if streamed:
        io.write_netcdf_blocks(
            path, "precip", _blocks(), times=DAYS, lat=GRID.lat, lon=GRID.lon, utc_start_hour=12
        )
    else:
        io.write_netcdf(_precip(), path, utc_start_hour=12)
    with xr.open_dataset(path) as ds:
        assert ds["time"].attrs["bounds"] == "time_bnds"
        tb = pd.DatetimeIndex(ds["time_bnds"].values[:, 0])
        assert (tb == DAYS - pd.Timedelta(hours=12)).all()
        assert ((ds["time_bnds"][:, 1] - ds["time_bnds"][:, 0]) == np.timedelta64(1, "D")).all()


def test_precip_rate_is_not_a_time_sum(tmp_path):
    spec = get_kind("precip")
    path = io.write_netcdf(_precip(), tmp_path / "p.nc", utc_start_hour=0)
    with xr.open_dataset(path) as ds:
        a = ds["precip"].attrs
    assert a["standard_name"] == spec.standard_name == "lwe_precipitation_rate"
    assert a["cell_methods"] == "time: mean" and a["units"] == "mm day-1"
    assert a["grid_mapping"] == "crs"


def test_no_fill_value_on_coordinates(tmp_path):
    files = _write_all(tmp_path)
    for path in files.values():
        with netCDF4.Dataset(path) as nc:
            for c in ("time", "lat", "lon", "time_bnds", "crs"):
                if c in nc.variables:
                    assert "_FillValue" not in nc[c].ncattrs(), (path, c)


def test_history_is_appended_without_wall_clock(tmp_path):
    first = io.write_netcdf(_precip(), tmp_path / "a.nc", utc_start_hour=12, what="ingest")
    ds = io.read_netcdf(first, load=True)
    assert "crs" not in ds.data_vars and "time_bnds" not in ds.data_vars
    second = io.write_netcdf(ds, tmp_path / "b.nc", utc_start_hour=12, what="regrid")
    lines = io.read_netcdf(second).attrs["history"].splitlines()
    assert lines == [io.history_line("ingest"), io.history_line("regrid")]
    assert not any(ch.isdigit() for ch in lines[0].split(":")[-1])
    stamped = io.history_line("x", timestamp=True)
    assert stamped[:4].isdigit() and stamped.endswith("x")


def test_same_inputs_same_bytes(tmp_path):
    """NetCDF (both writers) and gzipped GeoTIFFs are byte-identical when rewritten."""
    sums = []
    for run in ("one", "two"):
        d = tmp_path / run
        files = _write_all(d)
        tif = io.write_geotiff(_precip().isel(time=1), d / "p.tif", gz=True)
        sums.append({k: open(p, "rb").read() for k, p in {**files, "tif": tif}.items()})
        time.sleep(1.1)  # a gzip header with a time stamp would now differ
    assert sums[0].keys() == sums[1].keys()
    for k in sums[0]:
        assert sums[0][k] == sums[1][k], k
    # the gzip header names no file and has no time
    raw = sums[0]["tif"]
    assert raw[3] & 0x08 == 0  # FNAME flag
    assert raw[4:8] == b"\0\0\0\0"  # MTIME
    assert gzip.decompress(raw)[:4] in (b"II*\0", b"MM\0*")


def test_saved_model_is_byte_identical(tmp_path):
    import torch

    from gridfuse.models.mpfm import MPFM, MPFMConfig
    from gridfuse.models.train import FusionModel, Standardizer

    torch.manual_seed(0)
    net = MPFM(
        MPFMConfig.variant(
            "mpfm", 2, conv_channels=[4], attention_heads=2, hidden=[4], head_hidden=4, window=3
        )
    )
    std = Standardizer(["a", "elevation"], [True, False], [0.0, 0.0], [1.0, 1.0])
    model = FusionModel([net], std, name="mpfm")
    a = model.save(tmp_path / "a" / "m.pt").read_bytes()
    b = model.save(tmp_path / "b" / "m.pt").read_bytes()
    assert a == b
    assert b"gftmp" not in a


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        p = io.write_netcdf(_static(), tmp_path / "s.nc")
        with io.atomic_path(tmp_path / "t.csv") as tmp:
            tmp.write_text("a\n")
    finally:
        os.umask(old)
    for f in (p, tmp_path / "t.csv"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f


def test_stale_temporaries_are_removed(tmp_path):
    keep = tmp_path / "a" / "2019.nc"
    keep.parent.mkdir()
    keep.write_text("done")
    (tmp_path / "a" / ".hidden").write_text("user file")
    # what a killed job leaves: the temporary of atomic_path, never renamed
    cm = io.atomic_path(tmp_path / "a" / "2020.nc", suffix=".nc")
    stale = cm.__enter__()
    stale.write_text("half")
    inner = stale.with_name(stale.name + ".inner.tif")
    inner.write_text("half")
    removed = io.remove_stale_temporaries(tmp_path)
    assert set(removed) == {stale, inner}
    assert keep.exists() and (tmp_path / "a" / ".hidden").exists()
    assert not stale.exists() and not inner.exists()
    assert io.remove_stale_temporaries(tmp_path / "missing") == []


# ---------------------------------------------------------------------- quality layer
def test_source_flags_from_a_raw_block():
    raw = np.ones((2, 3, 2, 2), dtype="f4")  # (days, channels, lat, lon)
    raw[0, 0, 0, 0] = np.nan  # source a missing at one cell-day
    raw[1, 1] = np.nan  # source b missing on day 1
    flags = quality.source_flags(raw, ["a", "b", "elevation"], ["a", "b"], axis=1)
    assert flags.shape == (2, 2, 2) and flags.dtype == np.int8
    assert flags[0, 0, 0] == 0b10 and flags[0, 1, 1] == 0b11
    assert (flags[1] == 0b01).all()
    dec = quality.decode(flags, quality.flag_attrs(["a", "b"])["flag_meanings"])
    assert dec["a"][0, 0, 0] == np.False_ and dec["b"][1].sum() == 0


def test_flags_from_fields_need_every_field_of_a_source():
    t = np.array([[1.0, np.nan]])
    met = {"t2m": np.array([[1.0, 1.0]]), "blh": np.array([[np.nan, 1.0]])}
    f = quality.flags_from_fields(
        {"so2_column": t, **met}, {"tropomi": ["so2_column"], "era5_met": ["t2m", "blh"]}
    )
    assert f.tolist() == [[0b01, 0b10]]
    absent = quality.flags_from_fields(met, {"tropomi": [], "era5_met": ["t2m"]})
    assert absent.tolist() == [[0b10, 0b10]]
    with pytest.raises(ValueError, match=r"fields \['u10'\]"):
        quality.flags_from_fields(met, {"era5_met": ["t2m", "u10"]})


def test_source_flags_errors_name_what_is_wrong():
    raw = np.ones((1, 2, 1, 1))
    with pytest.raises(ValueError, match=r"\['c'\] are not among the channels"):
        quality.source_flags(raw, ["a", "b"], ["a", "c"])
    with pytest.raises(ValueError, match="2 channels on axis 1"):
        quality.source_flags(raw, ["a", "b", "x"], ["a"])
    with pytest.raises(ValueError, match="duplicate"):
        quality.flag_attrs(["a", "a"])
    assert quality.flag_dtype(7) == np.int8 and quality.flag_dtype(8) == np.int16
    with pytest.raises(ValueError, match="at most 31"):
        quality.flag_dtype(32)


def test_quality_layer_in_the_product(tmp_path):
    path = tmp_path / "p.nc"
    io.write_netcdf_blocks(
        path,
        "precip",
        _blocks(flags=True),
        times=DAYS,
        lat=GRID.lat,
        lon=GRID.lon,
        utc_start_hour=12,
        flag_sources=["era5", "imerg"],
    )
    with xr.open_dataset(path) as ds:
        q = ds[quality.QUALITY_VARIABLE]
        assert q.dtype == np.int8 and (q.values == 3).all()
        assert q.attrs["flag_meanings"] == "era5_valid imerg_valid"
        assert list(q.attrs["flag_masks"]) == [1, 2]
        assert ds["precip"].attrs["ancillary_variables"] == quality.QUALITY_VARIABLE
    # blocks without flags are an error naming the file
    with pytest.raises(ValueError, match="p2.nc.*flags"):
        io.write_netcdf_blocks(
            tmp_path / "p2.nc",
            "precip",
            _blocks(),
            times=DAYS,
            lat=GRID.lat,
            lon=GRID.lon,
            flag_sources=["era5"],
        )
    assert not (tmp_path / "p2.nc").exists()


def test_kind_spec_is_the_one_place():
    assert set(KINDS) == {"precip", "so2"}
    assert io.CF_VARIABLES["so2"] == KINDS["so2"].cf_attrs
    assert KINDS["so2"].stations.reference_298k and not KINDS["precip"].stations.reference_298k
    assert KINDS["precip"].stations.aggregation == "sum"
    assert KINDS["so2"].geotiff_name(pd.Timestamp("2018-09-01")) == "so2_20180901.tif"
    with pytest.raises(ValueError, match="unknown product kind 'rain'"):
        get_kind("rain")
    for spec in KINDS.values():  # the reports read these facts instead of the kind's name
        assert spec.held_out in ("evaluation_stations", "out_of_fold")
        assert {"maps", "scatter", "scores"} <= set(spec.reports)
    assert KINDS["precip"].sources_in_reports and not KINDS["so2"].sources_in_reports
    assert KINDS["so2"].display_units == "µg/m³" and KINDS["precip"].colormap == "YlGnBu"


# ---------------------------------------------------------------------- the workflow's files
def test_workflow_netcdf_files_are_cf_with_crs(test_workflow):
    """Every NetCDF layout of the tiny workflow: 0 checker errors, EPSG:4326 for GDAL."""
    pytest.importorskip("compliance_checker")
    res = test_workflow / "results"
    picks = {
        "daily": res / "test_precip" / "daily" / "era5" / "2019.nc",
        "daily_met": res / "test_so2" / "daily" / "era5_met" / "2018.nc",
        "downscaled": res / "test_so2" / "downscaled" / "tropomi" / "2018.nc",
        "static": res / "test_so2" / "static.nc",
        "truth": res / "test_precip" / "truth" / "2019.nc",
        "product_precip": res / "test_precip" / "product" / "2019.nc",
        "product_so2": res / "test_so2" / "product" / "2018.nc",
        "samples": res / "test_precip" / "samples" / "patches.nc",
    }
    errors = {k: _cf_errors(p) for k, p in picks.items()}
    assert errors == {k: [] for k in picks}
    for k, p in picks.items():
        if k == "samples":
            continue
        with xr.open_dataset(p) as ds:
            var = next(v for v in ds.data_vars if {"lat", "lon"} <= set(ds[v].dims))
            if "time" in ds.dims:
                assert ds["time"].attrs.get("bounds") == "time_bnds", k
        with rasterio.open(f"netcdf:{p}:{var}") as src:
            assert src.crs is not None and src.crs.to_epsg() == 4326, k


def test_npz_is_reproducible_and_loads(tmp_path):
    a = {"perm": np.arange(10, dtype="i8")[::-1], "shape": np.array([2, 5]), "seed": 3}
    io.save_npz(tmp_path / "a.npz", **a)
    time.sleep(2.1)  # zip member times have a 2 s resolution
    io.save_npz(tmp_path / "b.npz", **a)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as z:
        np.testing.assert_array_equal(z["perm"], a["perm"])
        assert int(z["seed"]) == 3


def _lazy_met(jitter: bool) -> xr.Dataset:
    """Five dask-backed fields in blocks of 3 days and ``wd`` computed from u10/v10; with
    ``jitter`` every block takes a random time, so threads finish them in varying order."""
    import random

    import dask.array as da

    def slow(block):
        if jitter:
            time.sleep(random.random() * 0.02)
        return block

    rng = np.random.default_rng(0)
    data = {}
    for n in ("t2m", "blh", "u10", "v10", "tp"):
        arr = da.from_array(rng.random((12, 20, 30)).astype("f4"), chunks=(3, 20, 30))
        data[n] = (("time", "lat", "lon"), arr.map_blocks(slow, dtype="f4"))
    coords = {
        "time": pd.date_range("2020-01-01", periods=12),
        "lat": np.linspace(31.0, 30.0, 20),
        "lon": np.linspace(100.0, 101.0, 30),
    }
    ds = xr.Dataset(data, coords=coords)
    ds["wd"] = np.arctan2(ds["u10"], ds["v10"])
    return ds


def test_dask_backed_write_is_byte_identical(tmp_path):
    """Threads finishing blocks in any order give the same bytes (xarray's dask store wrote
    chunks as they came, so HDF5's layout varied) and the file an in-memory write gives."""
    import dask

    files = []
    for i, workers in enumerate((4, 4, 2)):
        with dask.config.set(scheduler="threads", num_workers=workers):
            path = io.write_netcdf(_lazy_met(True), tmp_path / f"{i}.nc", utc_start_hour=12)
        files.append(path.read_bytes())
    assert files[0] == files[1] == files[2]
    eager = io.write_netcdf(_lazy_met(False).load(), tmp_path / "eager.nc", utc_start_hour=12)
    with io.read_netcdf(tmp_path / "0.nc") as lazy, io.read_netcdf(eager) as ref:
        assert lazy.identical(ref)
    with netCDF4.Dataset(tmp_path / "0.nc") as a, netCDF4.Dataset(eager) as b:
        for name in b.variables:
            assert a[name].dtype == b[name].dtype, name
            assert a[name].chunking() == b[name].chunking(), name
            assert a[name].filters() == b[name].filters(), name
            assert a[name].ncattrs() == b[name].ncattrs(), name
