"""Gauge-only interpolation (IDW, ordinary kriging) and the gauge-aware product pieces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse.gauge_fusion import (
    GridGaugeFields,
    ProductSpec,
    build_product,
    build_set_product,
    correct,
    fallback_days,
    patch_gauge_channels,
    product_at_stations,
    select_product,
    train_precip_network,
)
from gridfuse.gauges import (
    GaugeInterpolator,
    Variogram,
    choose_gauge_method,
    choose_idw_power,
    distance_km,
    idw_apply,
    idw_weights,
    krige,
    local_xy,
    loo_idw,
    nearest_distance,
)
from gridfuse.grid import Grid
from gridfuse.models.train import TrainConfig, member_folds, predict_stations
from gridfuse.samples import PatchSampler


def _gauges(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return 36.0 + rng.random(n), 101.0 + rng.random(n)


def test_distance_km_matches_a_degree_of_latitude():
    d = distance_km([36.0], [101.0], [37.0, 36.0], [101.0, 101.0])
    assert d.shape == (1, 2)
    assert d[0, 0] == pytest.approx(111.195, rel=1e-6) and d[0, 1] == 0


def test_idw_constant_field_exact_at_gauges_and_min_gauges():
    lat, lon = _gauges()
    v = np.full((3, lat.size), 4.0)
    v[1, :] = np.arange(lat.size)
    v[2, 2:] = np.nan  # two gauges only
    w = idw_weights(distance_km(lat, lon, lat, lon), 2.0)
    out = idw_apply(v, w, min_gauges=3)
    assert np.allclose(out[0], 4.0)
    # at a gauge's own position its value dominates (distance floor 0.5 km)
    assert np.allclose(out[1], np.arange(lat.size), atol=0.2)
    assert np.isnan(out[2]).all()


def test_loo_idw_never_uses_the_gauge_itself():
    lat, lon = _gauges()
    v = np.random.default_rng(1).random((5, lat.size))
    d = distance_km(lat, lon, lat, lon)
    a = loo_idw(v, d, 2.0)
    v2 = v.copy()
    v2[:, 3] += 100.0
    b = loo_idw(v2, d, 2.0)
    assert np.allclose(a[:, 3], b[:, 3])
    assert not np.allclose(a[:, 4], b[:, 4])


def test_idw_power_chosen_by_leave_one_out():
    lat, lon = _gauges(20)
    x, y = local_xy(lat, lon, 36.5, 101.5)
    rng = np.random.default_rng(2)
    v = np.stack([np.sin(x / 20 + p) + 0.01 * rng.random(lat.size) for p in rng.random(30)])
    best, table = choose_idw_power(v, distance_km(lat, lon, lat, lon))
    assert best in table and table[best] == min(table.values())


def test_nearest_distance_skips_missing_gauges():
    d = np.array([[1.0, 5.0], [3.0, 2.0]])
    v = np.array([[1.0, 1.0], [np.nan, 1.0], [np.nan, np.nan]])
    out = nearest_distance(v, d)
    assert np.allclose(out[0], [1.0, 2.0]) and np.allclose(out[1], [5.0, 2.0])
    assert np.isnan(out[2]).all()


def test_kriging_exact_constant_duplicates_and_too_few():
    lat, lon = _gauges(10)
    xy = local_xy(lat, lon, 36.5, 0.0)
    v = np.random.default_rng(3).random((3, lat.size)) * 5
    v[1] = 2.5
    v[2, 2:] = np.nan
    vario = Variogram(nugget=0.0, range_km=60.0)
    out = krige(v, xy, xy, vario, min_gauges=3)
    assert np.allclose(out[0], v[0], atol=1e-4)  # exact interpolator without nugget
    assert np.allclose(out[1], 2.5)
    assert np.isnan(out[2]).all()
    # a duplicated gauge (same place, another value) is averaged, not a singular system
    dup = (np.r_[xy[0], xy[0][:1]], np.r_[xy[1], xy[1][:1]])
    vv = np.c_[v[:1], [[v[0, 0] + 1.0]]]
    out = krige(vv, dup, xy, vario)
    assert np.isfinite(out).all() and out[0, 0] == pytest.approx(v[0, 0] + 0.5, abs=1e-4)


def test_variogram_fit_on_a_smooth_field_has_a_long_range():
    rng = np.random.default_rng(4)
    lat, lon = 36.0 + rng.random(40), 101.0 + rng.random(40)
    x, y = local_xy(lat, lon, 36.5, 101.5)
    days = [np.sin(x / 40 + a) * np.cos(y / 40 + b) for a, b in rng.random((60, 2)) * 6]
    smooth = Variogram.fit(np.array(days), distance_km(lat, lon, lat, lon))
    noise = Variogram.fit(rng.random((60, 40)), distance_km(lat, lon, lat, lon))
    assert smooth.n_days == 60 and smooth.nugget < noise.nugget


def test_interpolator_roundtrip_and_method_check():
    lat, lon = _gauges()
    v = np.random.default_rng(5).random((8, lat.size))
    for method in ("idw", "ok", "mean"):
        gi = GaugeInterpolator(method).fit(lat, lon, v)
        again = GaugeInterpolator.from_dict(gi.to_dict())
        a = gi.predict(lat, lon, v, lat[:3] + 0.01, lon[:3])
        assert a.shape == (8, 3) and np.allclose(
            a, again.predict(lat, lon, v, lat[:3] + 0.01, lon[:3])
        )
    with pytest.raises(ValueError, match="'idw', 'ok' or 'mean'"):
        GaugeInterpolator("spline")


def test_mean_interpolator_and_gauge_method_by_leave_one_out():
    lat, lon = _gauges(10)
    rng = np.random.default_rng(3)
    x, y = local_xy(lat, lon, 36.5, 101.5)
    v = np.array([np.sin(x / 30 + a) + np.cos(y / 30 + b) + 3 for a, b in rng.random((20, 2))])
    gi = {m: GaugeInterpolator(m).fit(lat, lon, v) for m in ("idw", "ok", "mean")}
    p = {m: g.predict(lat, lon, v, lat[:4] + 0.02, lon[:4]) for m, g in gi.items()}
    assert np.allclose(p["mean"], 0.5 * (p["idw"] + p["ok"]), atol=1e-5)
    # its two parts share its weight cache: a second call reuses their weights
    parts, n_weights = gi["mean"].parts(), len(gi["mean"].cache._items)
    again = gi["mean"].predict(lat, lon, v, lat[:4] + 0.02, lon[:4])
    assert parts[0].cache is parts[1].cache is gi["mean"].cache
    assert n_weights == len(gi["mean"].cache._items) == 2 and np.array_equal(again, p["mean"])
    gi["mean"].power += 1.0  # the parts follow its settings
    assert gi["mean"].parts()[0].power == gi["mean"].power
    best, table = choose_gauge_method(lat, lon, v)
    assert set(table) == {"idw", "ok", "mean"} and best == min(table, key=table.get)
    # leave-one-out: a gauge's own value never predicts it, so a wild value at one gauge
    # raises every method's error
    v2 = v.copy()
    v2[:, 0] += 50.0
    _, table2 = choose_gauge_method(lat, lon, v2)
    assert all(table2[m] > table[m] + 1.0 for m in table)
    assert choose_gauge_method(lat[:2], lon[:2], v[:, :2]) == ("idw", {})


def test_correct_adds_residuals_clips_and_thresholds():
    lat, lon = _gauges(6)
    pred = np.array([[1.0, 1.0, 0.05]])
    resid = np.full((1, 6), 2.0)
    gi = GaugeInterpolator("idw")
    out = correct(pred, resid, lat, lon, lat[:3], lon[:3], gi, wet_threshold=0.1)
    assert np.allclose(out, [[3.0, 3.0, 2.05]])
    out = correct(pred, -resid, lat, lon, lat[:3], lon[:3], gi, wet_threshold=0.1)
    assert (out == 0).all()
    assert np.allclose(correct(pred, None, None, None, None, None, None, 0.1), [[1, 1, 0]])
    # blended half and half with a gauge-only field; where that is missing the fused value
    g = np.array([[3.0, np.nan, -1.0]])
    out = correct(pred, None, None, None, None, None, None, 0.0, g, 0.5)
    assert np.allclose(out, [[2.0, 1.0, 0.025]])


def test_fallback_days_and_grid_fields():
    lat, lon = _gauges(5)
    v = np.ones((3, 5))
    v[1, 2:] = np.nan
    assert fallback_days(v, 3).tolist() == [False, True, False]
    grid = Grid(101.0, 36.0, 102.0, 37.0, 0.1)
    import pandas as pd

    times = pd.date_range("2020-01-01", periods=3)
    gf = GridGaugeFields(lat, lon, v, times, grid, 2.0, min_gauges=3)
    out = gf.read(pd.date_range("2019-12-31", periods=4))
    assert out.shape == (4, 2, *grid.shape)
    assert np.isnan(out[0]).all() and np.isnan(out[2]).all()  # outside the table; too few
    assert np.allclose(out[1, 0], 1.0) and np.nanmax(out[1, 1]) < 150


# ------------------------------------------------------------------ product (tiny world)
def _world(n_st=10, n_t=40, p=9, seed=0):
    """Stations on a small grid: one source = truth x noise, gauges = truth."""
    rng = np.random.default_rng(seed)
    lat, lon = 36.0 + 0.5 * rng.random(n_st), 101.0 + 0.5 * rng.random(n_st)
    base = rng.gamma(0.6, 3.0, n_t)
    y = (base[None, :] * (1 + 0.2 * rng.standard_normal((n_st, n_t)))).clip(0).astype("f4")
    off = (np.arange(p) - p // 2) * 0.01
    cl = (lat[:, None, None] - off[None, :, None]) + 0 * off[None, None, :]
    cn = lon[:, None, None] + off[None, None, :] + 0 * off[None, :, None]
    src = y[:, :, None, None] * rng.lognormal(0, 0.3, (n_st, n_t, p, p))
    x = np.stack(
        [src, np.broadcast_to(cl[:, None], src.shape), np.broadcast_to(cn[:, None], src.shape)],
        axis=-1,
    ).astype("f4")
    geo = {
        "ids": np.array([f"s{i}" for i in range(n_st)]),
        "lat": lat,
        "lon": lon,
        "cell_lat": cl,
        "cell_lon": cn,
        "centre_lat": cl[:, p // 2, p // 2],
        "centre_lon": cn[:, p // 2, p // 2],
    }
    return x, y, ["src", "lat", "lon"], geo


def test_patch_channels_leave_the_station_out():
    x, y, _, geo = _world()
    src = np.arange(8)
    a = patch_gauge_channels(y, geo["lat"], geo["lon"], geo["cell_lat"], geo["cell_lon"], src, 2.0)
    y2 = y.copy()
    y2[3] += 50
    b = patch_gauge_channels(y2, geo["lat"], geo["lon"], geo["cell_lat"], geo["cell_lon"], src, 2.0)
    assert a.shape == (10, 40, 9, 9, 2)
    assert np.allclose(a[3], b[3], equal_nan=True)  # its own value never enters its patch
    assert not np.allclose(a[4], b[4], equal_nan=True)
    assert np.allclose(a[8], b[8], equal_nan=True) is False  # non-sources see every source


def test_member_folds_are_disjoint():
    masks = member_folds(10, 2, 0.2, 0)
    assert all(m.sum() == 2 for m in masks) and not (masks[0] & masks[1]).any()


def test_product_never_sees_the_held_out_gauge():
    x, y, ch, geo = _world()
    train = np.arange(8)
    cfg = TrainConfig(epochs=1, samples_per_epoch=64, batch_size=32, seeds=[0, 1], device="cpu")
    sizes = {
        "window": 3,
        "conv_channels": [4],
        "hidden": [4],
        "head_hidden": 4,
        "attention_heads": 1,
    }
    models = {}
    for net in ("mpfm", "mpfm_g"):
        models[net], _ = train_precip_network(
            net, x, y, ch, ["src"], train, geo, sizes=sizes, train_cfg=cfg, val_fraction=0.5
        )
        assert len(models[net].meta["members"]) == 2
    spec = build_product(models, x, y, ch, geo, train, np.arange(40), device="cpu")
    assert spec.net in ("mpfm", "mpfm_g") and spec.correction in ("none", "idw", "ok")
    # nets x corrections x (fused weights 1, 0.9 .. 0.1 with the chosen gauge interpolation)
    # + the gauge-only variant once
    assert len(spec.table) == 2 * 3 * 10 + 1
    spec = ProductSpec(**{**spec.__dict__, "net": "mpfm_g", "correction": "idw"})
    spec.interp = GaugeInterpolator("idw").to_dict()
    targets = np.array([8, 9])
    a = product_at_stations(spec, models, x, y, ch, geo, train, targets, device="cpu")
    y2 = y.copy()
    y2[targets] += 30.0  # the held-out gauges' values must not matter
    b = product_at_stations(spec, models, x, y2, ch, geo, train, targets, device="cpu")
    assert np.isfinite(a[targets]).all() and np.allclose(a[targets], b[targets])
    assert np.isnan(a[train]).all()


def _same(a, b) -> bool:
    """Equal specs: the same keys and strings, floats within 1e-6."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, float):
        return bool(np.isclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True))
    return a == b


def test_a_set_product_reads_its_days_and_equals_the_whole_files(tmp_path, monkeypatch):
    """select_precip (:func:`build_set_product`) reads only its set's days and the 2 days
    either side that the 5-day windows reach, and its spec (inner CV table, interpolators,
    wet threshold) is the one :func:`build_product` gives on the whole patches -- for the
    first set of the period and for the last."""
    x, y, _, geo = _world(n_t=40)
    rng = np.random.default_rng(3)
    x = np.concatenate(  # a second source, in 2020 only
        [x[..., :1], x[..., :1] * rng.lognormal(0, 0.3, x[..., :1].shape), x[..., 1:]], -1
    ).astype("f4")
    times = pd.date_range("2019-12-12", periods=40)  # 20 days of 2019, 20 of 2020
    year_sets = {2019: ["a"], 2020: ["a", "b"]}
    roles = np.array(["train"] * 8 + ["evaluation"] * 2)
    path = tmp_path / "patches.nc"
    xr.Dataset(
        {"x": (("station", "time", "py", "px", "channel"), x), "y": (("station", "time"), y)},
        coords={
            "station": geo["ids"],
            "time": times,
            "channel": ["a", "b", "lat", "lon"],
            "role": ("station", roles),
            "lat": ("station", geo["lat"]),
            "lon": ("station", geo["lon"]),
        },
        attrs={"window_days": 5},
    ).to_netcdf(path, engine="netcdf4")
    whole = PatchSampler.open(path)
    train = np.flatnonzero(roles == "train")
    cfg = TrainConfig(epochs=1, samples_per_epoch=64, batch_size=32, seeds=[0, 1], device="cpu")
    sizes = {"window": 5, "conv_channels": [4], "hidden": [4], "head_hidden": 4}
    sizes["attention_heads"] = 1
    read = []
    from_dataset = PatchSampler.from_dataset.__func__

    def spy(cls, ds, window=None):
        read.append(pd.DatetimeIndex(ds["time"].values))
        return from_dataset(cls, ds, window)

    monkeypatch.setattr(PatchSampler, "from_dataset", classmethod(spy))
    for year, srcs in year_sets.items():
        xs, ch = whole.source_inputs(srcs)
        models = {
            net: train_precip_network(
                net, xs, y, ch, srcs, train, whole.geo(), sizes=sizes, train_cfg=cfg
            )[0]
            for net in ("mpfm", "mpfm_g")
        }
        days = np.flatnonzero(times.year == year)
        ref = build_product(models, xs, y, ch, whole.geo(), train, days, device="cpu")
        spec = build_set_product(path, models, srcs, year_sets, device="cpu")
        lo, hi = max(0, days[0] - 2), min(len(times), days[-1] + 3)
        assert read[-1].equals(times[lo:hi]) and hi - lo == 22
        assert _same(dataclasses.asdict(spec), dataclasses.asdict(ref))
        # the margin matters: without it the edge day of the set loses its neighbours' days
        edge = days[0] if year == 2020 else days[-1]
        cut = xs[:, days] if year == 2020 else xs[:, : days[-1] + 1]
        assert not np.allclose(
            predict_stations(models["mpfm"], cut, ch, device="cpu")[:, edge - days[0]],
            predict_stations(models["mpfm"], xs, ch, device="cpu")[:, edge],
        )


def test_select_product_prefers_the_better_network():
    x, y, ch, geo = _world()
    rng = np.random.default_rng(0)
    fit, val = np.arange(5), np.arange(5, 10)
    good = y + 0.1 * rng.standard_normal(y.shape).astype("f4")
    bad = y + 3.0 * rng.standard_normal(y.shape).astype("f4")
    spec = select_product(
        {"mpfm": [(fit, val, bad)], "mpfm_g": [(fit, val, good)]}, y, geo, np.arange(40)
    )
    assert spec.net == "mpfm_g"


def test_select_product_keeps_the_gauges_when_the_sources_add_nothing():
    """Networks no better than noise: the gauge-only interpolation (fused weight 0) is within
    one standard error of the best variant, so it is the product."""
    x, y, ch, geo = _world(n_st=16, n_t=60)
    rng = np.random.default_rng(1)
    fit, val = np.arange(8), np.arange(8, 16)
    noisy = {
        n: [(fit, val, (y * rng.lognormal(0, 1.0, y.shape)).astype("f4"))]
        for n in ("mpfm", "mpfm_g")
    }
    spec = select_product(noisy, y, geo, np.arange(60), gauge_methods=("idw",))
    assert spec.blend == 0.0 and spec.gauge_method == "idw"
    rmse = {(r["net"], r["correction"], r["gauge"], r["blend"]): r["rmse"] for r in spec.table}
    assert rmse[("mpfm", "none", "idw", 0.0)] <= min(rmse.values()) * 1.2
    good = {n: [(fit, val, y + 0.01)] for n in ("mpfm", "mpfm_g")}
    spec = select_product(good, y, geo, np.arange(60), gauge_methods=("idw",))
    assert spec.blend == 1.0  # a near-perfect network: the fused estimate, unblended


def test_too_few_gauges_for_fields_trains_and_falls_back():
    """Three training gauges: leave-one-out fields have two sources (< min_gauges 3), so the
    gauge channels are empty; training and the product still work (logged), no NaN."""
    x, y, ch, geo = _world()
    train = np.arange(3)
    cfg = TrainConfig(epochs=1, samples_per_epoch=32, batch_size=16, seeds=[0], device="cpu")
    sizes = {
        "window": 3,
        "conv_channels": [4],
        "hidden": [4],
        "head_hidden": 4,
        "attention_heads": 1,
    }
    models = {
        net: train_precip_network(
            net, x, y, ch, ["src"], train, geo, sizes=sizes, train_cfg=cfg, val_fraction=0.34
        )[0]
        for net in ("mpfm", "mpfm_g")
    }
    spec = ProductSpec(net="mpfm_g", correction="ok", gauge_power=2.0, min_gauges=4)
    out = product_at_stations(spec, models, x, y, ch, geo, train, np.arange(3, 10), device="cpu")
    assert np.isfinite(out[3:]).all()


def test_kriging_weights_match_pykrige_day_by_day():
    """The grouped kernel gives PyKrige's ordinary kriging, day by day, whatever reports."""
    from pykrige.ok import OrdinaryKriging

    rng = np.random.default_rng(11)
    lat, lon = _gauges(14)
    xy = local_xy(lat, lon, 36.5, 0.0)
    tx = np.r_[rng.uniform(xy[0].min(), xy[0].max(), 300), xy[0][:2]]  # two on gauges
    ty = np.r_[rng.uniform(xy[1].min(), xy[1].max(), 300), xy[1][:2]]
    v = rng.gamma(0.6, 3.0, (9, lat.size))
    v[2, 3:6] = np.nan  # three days with other reporting gauges
    v[5, 0] = np.nan
    v[7, ::2] = np.nan
    vario = Variogram(nugget=0.25, range_km=45.0)
    ours = krige(v, xy, (tx, ty), vario, min_gauges=3)
    params = {"sill": 1.0, "range": vario.range_km, "nugget": vario.nugget}
    for t in range(v.shape[0]):
        ok = np.isfinite(v[t])
        ref, _ = OrdinaryKriging(
            xy[0][ok],
            xy[1][ok],
            v[t, ok],
            variogram_model="exponential",
            variogram_parameters=params,
        ).execute("points", tx, ty)
        np.testing.assert_allclose(ours[t], ref, rtol=1e-5, atol=1e-5)
    # a target on a reporting gauge takes its value (with a nugget too)
    np.testing.assert_allclose(ours[0, -2:], v[0, :2], rtol=1e-5, atol=1e-6)
