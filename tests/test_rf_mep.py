"""RF-MEP (random-forest merging with distances to the training gauges)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse import metrics
from gridfuse.grid import Grid
from gridfuse.models.rf_mep import RFMEP, cross_val_predict, haversine_km, station_samples


def test_haversine_known_distances():
    # one degree of latitude is 111.19 km; a quarter of the equator 10007.5 km
    assert haversine_km(0.0, 0.0, 1.0, 0.0) == pytest.approx(111.195, abs=0.01)
    assert haversine_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(10007.54, abs=0.1)
    assert haversine_km(-33.0, -71.0, -33.0, -71.0) == 0.0
    # one degree of longitude shrinks with cos(latitude)
    along_parallel = 111.195 * np.cos(np.radians(60.0))
    d = haversine_km(60.0, 10.0, 60.0, 11.0)
    assert d == pytest.approx(along_parallel, abs=0.01) and d < along_parallel


def _world(seed=0, n_gauges=30, n_days=60):
    """Gauges on a 0.05 deg grid; the truth has a bump around (lat, lon) = (-33, -71).

    The product sees the daily signal but not the bump: only the location can explain it.
    """
    rng = np.random.default_rng(seed)
    grid = Grid(-71.5, -33.5, -70.5, -32.5, 0.05)
    glat = rng.choice(grid.lat, n_gauges)
    glon = rng.choice(grid.lon, n_gauges)
    daily = rng.gamma(1.0, 4.0, n_days)
    bump = 20.0 * np.exp(-((haversine_km(glat, glon, -33.0, -71.0) / 20.0) ** 2))
    truth = daily[:, None] + bump[None, :]  # (day, gauge)
    product = daily[:, None] * np.ones(n_gauges)[None, :] + rng.normal(0, 0.3, truth.shape)
    elev = 500.0 + 0.0 * glat
    return grid, glat, glon, truth, product, elev


def _rows(glat, glon, truth, product, elev):
    n_days, n_g = truth.shape
    return (
        product.reshape(-1, 1),
        np.tile(elev, n_days),
        np.tile(glat, n_days),
        np.tile(glon, n_days),
        truth.ravel(),
    )


def test_distances_recover_a_field_tied_to_location():
    grid, glat, glon, truth, product, elev = _world()
    train = np.arange(20)
    test = np.arange(20, 30)
    P, E, la, lo, y = _rows(
        glat[train], glon[train], truth[:, train], product[:, train], elev[train]
    )
    Pt, Et, lat_t, lon_t, yt = _rows(
        glat[test], glon[test], truth[:, test], product[:, test], elev[test]
    )
    mep = RFMEP(100, random_state=1).fit(P, E, la, lo, y)
    plain = RFMEP(100, distances=False, random_state=1).fit(P, E, la, lo, y)
    err_mep = metrics.rmse(yt, mep.predict(Pt, Et, lat_t, lon_t))
    err_plain = metrics.rmse(yt, plain.predict(Pt, Et, lat_t, lon_t))
    # the product cannot see the bump; the distances can
    assert err_mep < 0.6 * err_plain
    assert len(mep.feature_names_) == 1 + 1 + 20 and mep.feature_names_[1] == "elevation"


def test_only_training_gauges_become_covariates():
    grid, glat, glon, truth, product, elev = _world(n_gauges=12)
    P, E, la, lo, y = _rows(glat[:8], glon[:8], truth[:, :8], product[:, :8], elev[:8])
    m = RFMEP(20).fit(P, E, la, lo, y)
    want = np.unique(np.column_stack([glat[:8], glon[:8]]), axis=0)
    np.testing.assert_array_equal(m.gauges_, want)
    X = m.covariates(P[:3], E[:3], la[:3], lo[:3])
    assert X.shape == (3, 2 + len(want)) and X.dtype == np.float32
    np.testing.assert_allclose(
        X[:, 2:],
        haversine_km(la[:3, None], lo[:3, None], want[None, :, 0], want[None, :, 1]),
        rtol=1e-6,
    )


def test_predict_grid_equals_row_predictions_and_handles_nan():
    grid, glat, glon, truth, product, elev = _world(n_gauges=15, n_days=20)
    m = RFMEP(10, random_state=3).fit(*_rows(glat, glon, truth, product, elev))
    rng = np.random.default_rng(5)
    fields = rng.gamma(1.0, 4.0, (3,) + grid.shape + (1,))
    fields[1, 2, 3, 0] = np.nan  # a missing product cell gives a missing prediction
    dem = np.full(grid.shape, 500.0)
    out = m.predict_grid(fields, dem, grid.lat, grid.lon, block_days=2)
    assert out.shape == (3,) + grid.shape and out.dtype == np.float32
    la, lo = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    for t in (0, 2):
        rows = m.predict(fields[t].reshape(-1, 1), dem.ravel(), la.ravel(), lo.ravel())
        np.testing.assert_allclose(out[t].ravel(), rows, rtol=1e-6)
    assert np.isnan(out[1, 2, 3]) and np.isfinite(out[1]).sum() == grid.size - 1
    assert (out[np.isfinite(out)] >= 0).all()


def _samples():
    """station_samples on a small grid with two products and a DEM."""
    grid, glat, glon, truth, product, elev = _world(n_gauges=10, n_days=40)
    days = pd.date_range("2000-01-01", periods=40, freq="D")
    rng = np.random.default_rng(2)
    f1 = xr.DataArray(
        rng.gamma(1.0, 3.0, (40,) + grid.shape).astype("f4"),
        dims=("time", "lat", "lon"),
        coords={"time": days, **grid.coords()},
    )
    f2 = f1 * 0.5 + 1.0
    dem = xr.DataArray(
        np.arange(grid.size, dtype="f4").reshape(grid.shape),
        dims=("lat", "lon"),
        coords=grid.coords(),
    )
    # gauges slightly off their cell centres; one outside the grid is dropped
    stations = pd.DataFrame(
        {
            "station": [f"S{i}" for i in range(10)] + ["OUT"],
            "lat": np.r_[glat + 0.01, -40.0],
            "lon": np.r_[glon - 0.01, -71.0],
        }
    )
    daily = pd.DataFrame(
        [
            (s, d, float(v))
            for i, s in enumerate(stations["station"][:10])
            for d, v in zip(days, truth[:, i])
        ]
        + [("OUT", days[0], 1.0)],
        columns=["station", "date", "value"],
    )
    daily = daily.drop(index=[3, 50])  # gaps
    return grid, f1, f2, dem, stations, daily, truth, glat, glon


def test_station_samples_pick_the_gauge_pixel():
    grid, f1, f2, dem, stations, daily, truth, glat, glon = _samples()
    s = station_samples({"a": f1, "b": f2}, dem, stations, daily)
    assert len(s) == 400 - 2 and "OUT" not in set(s["station"])
    row = s.iloc[10]
    i = int(row["station"][1:])
    r, c = grid.rowcol(glon[i], glat[i])
    t = (row["date"] - pd.Timestamp("2000-01-01")).days
    assert row["lat"] == grid.lat[r[0]] and row["lon"] == grid.lon[c[0]]
    assert row["a"] == pytest.approx(float(f1.values[t, r[0], c[0]]))
    assert row["b"] == pytest.approx(float(f2.values[t, r[0], c[0]]))
    assert row["elevation"] == float(dem.values[r[0], c[0]])
    assert row["obs"] == pytest.approx(truth[t, i])


def test_cross_val_predict_never_sees_the_held_out_gauge():
    grid, f1, f2, dem, stations, daily, truth, glat, glon = _samples()
    s = station_samples({"a": f1, "b": f2}, dem, stations, daily)
    pred = cross_val_predict(s, ["a", "b"], n_estimators=10, random_state=0)
    assert np.isfinite(pred).all()
    # changing the observations of gauge S0 leaves its own out-of-fold predictions unchanged
    s2 = s.copy()
    s2.loc[s2["station"] == "S0", "obs"] *= 10
    pred2 = cross_val_predict(s2, ["a", "b"], n_estimators=10, random_state=0)
    mask = (s["station"] == "S0").to_numpy()
    np.testing.assert_array_equal(pred[mask], pred2[mask])
    assert not np.array_equal(pred[~mask], pred2[~mask])
    # folds mixing a station into train and test are refused
    idx = np.arange(len(s))
    with pytest.raises(ValueError, match="in both train and test"):
        cross_val_predict(s, ["a"], folds=[(idx[:300], idx[250:])], n_estimators=2)


def test_predict_before_fit_raises():
    with pytest.raises(RuntimeError, match="fit"):
        RFMEP().predict(np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.zeros(1))


def test_regressor_behind_the_precip_baseline_interface():
    from gridfuse.models.registry import make

    grid, glat, glon, truth, product, elev = _world(n_gauges=12, n_days=30)
    P, E, la, lo, y = _rows(glat, glon, truth, product, elev)
    X = np.column_stack([P, P * 0.5, E, la, lo])  # two products, then elevation, lat, lon
    reg = make("precip", "rf_mep", seed=4, params={"rf_mep": {"n_estimators": 15}}, n_sources=2)
    got = reg.fit(X, y).predict(X)
    direct = RFMEP(15, random_state=4).fit(X[:, :2], E, la, lo, y).predict(X[:, :2], E, la, lo)
    np.testing.assert_allclose(got, direct)
    assert reg.model.gauges_.shape == (len(np.unique(np.column_stack([glat, glon]), axis=0)), 2)
    with pytest.raises(ValueError, match="elevation, lat, lon"):
        reg.predict(X[:, :4])
    with pytest.raises(ValueError, match="unknown settings"):
        make("precip", "rf_mep", params={"rf_mep": {"trees": 3}}, n_sources=1)
