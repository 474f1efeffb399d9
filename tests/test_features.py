"""SO2 features: calendar, location, random IDs, spatial sampling, convolution, sequential."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from _so2_fixtures import GRID, make_inputs
from scipy import ndimage

from gridfuse.features import (
    CALENDAR_COLUMNS,
    LOCATION_COLUMNS,
    TECHNIQUES,
    FeatureBuilder,
    FeatureConfig,
    ParameterConvolution,
    RandomID,
    attach_values,
    calendar_features,
    decluster_weights,
    location_features,
    neighbourhood_mean,
    out_of_fold,
    station_frame,
    station_pixels,
    tile_frame,
    upwind_offsets,
    window_mean_at,
)


@pytest.fixture(scope="module")
def inputs():
    return make_inputs(n_days=12, n_stations=8)


@pytest.fixture(scope="module")
def frame(inputs):
    dyn, st, stations, daily = inputs
    px = station_pixels(stations, GRID)
    return attach_values(station_frame(dyn, st, px, FeatureConfig(), time_block=5), daily, px)


def test_calendar_known_days():
    c = calendar_features(pd.to_datetime(["2018-03-21", "2018-03-24", "2020-12-31"]))
    assert c["doy"].tolist() == [80, 83, 366]
    assert c["year"].tolist() == [2018, 2018, 2020]
    assert c["wond"].tolist() == [1, 0, 1]  # Wednesday, Saturday, Thursday


def test_location_normalized_over_grid():
    lon_n, lat_n = location_features(GRID.lon[[0, -1]], GRID.lat[[-1, 0]], GRID)
    np.testing.assert_allclose(lon_n, [0, 1])
    np.testing.assert_allclose(lat_n, [0, 1])


def test_random_id_permutation_stored_and_reused(tmp_path):
    rid = RandomID(GRID.shape, seed=5)
    r, c = np.meshgrid(np.arange(GRID.nlat), np.arange(GRID.nlon), indexing="ij")
    ids = rid(r.ravel(), c.ravel())
    # a permutation of 0..N-1, normalized to [0, 1]
    np.testing.assert_allclose(np.sort(ids * (GRID.size - 1)), np.arange(GRID.size), atol=1e-3)
    assert ids.min() == 0 and ids.max() == 1
    # no spatial order: neighbouring pixels are not close in ID
    assert np.corrcoef(ids, np.arange(GRID.size))[0, 1] < 0.2
    rid.save(tmp_path / "rid.npz")
    again = RandomID.load(tmp_path / "rid.npz")
    np.testing.assert_array_equal(again(r.ravel(), c.ravel()), ids)
    assert not np.array_equal(RandomID(GRID.shape, seed=6)(r.ravel(), c.ravel()), ids)
    with pytest.raises(IndexError):
        rid([GRID.nlat], [0])


def test_neighbourhood_mean_against_scipy():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(3, 9, 11)).astype(np.float32)
    for k in (3, 5):
        want = ndimage.uniform_filter(f.astype(np.float64), size=(1, k, k), mode="constant")
        n = ndimage.uniform_filter(
            np.ones_like(f, dtype=np.float64), size=(1, k, k), mode="constant"
        )
        np.testing.assert_allclose(neighbourhood_mean(f, k), want / n, rtol=1e-5)
    f[0, 4, 4] = np.nan
    got = neighbourhood_mean(f, 3)
    assert got[0, 4, 4] == pytest.approx(np.nanmean(f[0, 3:6, 3:6]), rel=1e-6)
    assert np.isnan(neighbourhood_mean(np.full((1, 3, 3), np.nan), 3)).all()


def test_window_mean_at_equals_field_filter():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(4, 10, 12)).astype(np.float32)
    f[rng.random(f.shape) < 0.2] = np.nan
    rows = np.array([0, 9, 5, 3, 0])
    cols = np.array([0, 11, 6, 0, 11])
    for k in (3, 5):
        np.testing.assert_array_equal(
            window_mean_at(f, rows, cols, k), neighbourhood_mean(f, k)[:, rows, cols]
        )


def test_decluster_weights():
    # two stations in one 0.1-degree cell, one alone in another
    lon = np.array([112.01, 112.02, 112.02, 112.31])
    lat = np.array([37.01, 37.05, 37.05, 37.11])
    w = decluster_weights(lon, lat, 0.1)
    assert w[0] == w[1] == w[2] and w[3] == pytest.approx(2 * w[0])
    assert w.mean() == pytest.approx(1.0)


def test_convolution_deterministic_and_shaped():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 20))
    X[3, 4] = np.nan
    a = ParameterConvolution(64, 16, 3, seed=1).fit(X)
    b = ParameterConvolution(64, 16, 3, seed=1).fit(X)
    ya, yb = a.transform(X), b.transform(X)
    assert ya.shape == (50, 80) and len(a.columns) == 80
    np.testing.assert_array_equal(ya, yb)
    assert np.isfinite(ya).all()
    # chunking does not change the result; a stored state reproduces it exactly
    np.testing.assert_array_equal(a.transform(X, chunk=7), ya)
    c = ParameterConvolution.from_state(a.state())
    np.testing.assert_array_equal(c.transform(X), ya)
    # another seed, other kernels
    assert not np.allclose(ParameterConvolution(64, 16, 3, seed=2).fit(X).transform(X), ya)
    # the derived features are not all linear combinations of three window means
    assert np.linalg.matrix_rank(ya[:, :64] - ya[:, :64].mean(0), tol=1e-4) > 3


def test_convolution_by_hand():
    pc = ParameterConvolution(3, 3, 3, seed=0)
    pc.k1 = np.eye(3, dtype=np.float32)
    pc.k2 = np.eye(3, dtype=np.float32)
    X = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0], [4.0, 5.0, 6.0, 7.0]])
    pc.fit(X)
    z = pc.normalize(X)
    np.testing.assert_allclose(z[0], [0, 1 / 5, 2 / 6, 3 / 7], rtol=1e-6)
    h1 = pc.transform(X)[:, :3]
    # kernel e_j picks position j of each window: mean over the 2 windows of tanh(z[i + j])
    want = [[np.tanh(z[0, j : j + 2]).mean() for j in range(3)]]
    np.testing.assert_allclose(h1[:1], want, rtol=1e-6)


def test_each_switch_removes_exactly_its_columns(frame):
    full = FeatureBuilder(FeatureConfig(), GRID)
    assert len(full.conv_columns) == 80
    for t in TECHNIQUES:
        cfg = FeatureConfig(sequential=True).without(t)
        b = FeatureBuilder(cfg, GRID)
        ref = FeatureBuilder(FeatureConfig(sequential=True), GRID)
        removed = set(ref.columns) - set(b.columns)
        assert removed == set(ref.technique_columns(t)), t
        assert set(b.columns) <= set(ref.columns)
    plain = FeatureBuilder(FeatureConfig().plain(), GRID)
    assert not {"rid", "conv1_00", "so2_column_m3", "prev_pollutant"} & set(plain.columns)
    assert {"lon_n", "lat_n", "doy", "so2_column"} <= set(plain.columns)


def test_builder_matrix_and_state(frame):
    b = FeatureBuilder(FeatureConfig(seed=4), GRID).fit(frame)
    X = b.transform(frame)
    assert X.shape == (len(frame), len(b.columns)) and X.dtype == np.float32
    j = b.columns.index("rid")
    np.testing.assert_array_equal(X[:, j], b.rid(frame["row"], frame["col"]))
    b2 = FeatureBuilder.from_state(b.cfg, GRID, b.state())
    np.testing.assert_array_equal(b2.transform(frame), X)
    with pytest.raises(KeyError, match="prev_pollutant"):
        FeatureBuilder(
            dataclasses.replace(b.cfg, convolution=False, sequential=True), GRID
        ).transform(frame)


def test_station_frame_matches_tile_frame(inputs, frame):
    dyn, st, stations, daily = inputs
    cfg = FeatureConfig()
    tf = tile_frame(dyn, st, cfg, slice(2, 7), slice(0, GRID.nlat), slice(3, 17))
    tf = tf.set_index(["date", "row", "col"])
    sf = frame.set_index(["date", "row", "col"])
    common = sf.index.intersection(tf.index)
    assert len(common) > 0
    cols = [c for c in tf.columns]
    pd.testing.assert_frame_equal(sf.loc[common, cols], tf.loc[common, cols], check_dtype=False)


def test_full_feature_matrix_same_at_station_pixels_as_grid_tiles(inputs):
    # Every feature group (dynamic, static, k x k means, random ID, location, calendar,
    # convolution) built from station rows must equal the grid tiles' rows at those pixels,
    # with stations on the grid's corners and edges, next to tile borders and sharing a pixel.
    dyn, st, _, _ = inputs
    ny, nx = GRID.shape
    rc = [(0, 0), (0, nx - 1), (ny - 1, 0), (ny - 1, nx - 1), (6, 7), (7, 6), (13, 13), (9, 0)]
    rc.append((13, 13))  # two monitors in one pixel
    stations = pd.DataFrame(
        {
            "station": [f"{2001 + i}A" for i in range(len(rc))],
            "lon": [GRID.lon[c] + 0.003 for _, c in rc],
            "lat": [GRID.lat[r] - 0.003 for r, _ in rc],
        }
    )
    px = station_pixels(stations, GRID)
    assert list(zip(px["row"], px["col"])) == rc
    cfg = FeatureConfig(m1=16, m2=4, seed=7)
    sf = station_frame(dyn, st, px, cfg, time_block=5)
    assert len(sf) == dyn.sizes["time"] * (len(rc) - 1)
    b = FeatureBuilder(cfg, GRID).fit(sf)
    groups = {
        "dynamic": list(cfg.dynamic),
        "static": list(cfg.static),
        "calendar": CALENDAR_COLUMNS,
        "location": LOCATION_COLUMNS,
    }
    groups.update({t: b.technique_columns(t) for t in ("spatial", "random_id", "convolution")})
    for name, cols in groups.items():
        assert cols and set(cols) <= set(b.columns), name
    x_st = b.transform(sf)
    key = pd.MultiIndex.from_frame(sf[["date", "row", "col"]])
    tile, days = 7, 4
    found = np.zeros(len(sf), bool)
    for a in range(0, dyn.sizes["time"], days):
        for r in range(0, ny, tile):
            for c in range(0, nx, tile):
                tf = tile_frame(
                    dyn, st, cfg, slice(a, a + days), slice(r, r + tile), slice(c, c + tile)
                )
                pos = pd.MultiIndex.from_frame(tf[["date", "row", "col"]]).get_indexer(key)
                hit = pos >= 0
                if not hit.any():
                    continue
                x_tile = b.transform(tf.iloc[pos[hit]])
                np.testing.assert_array_equal(x_tile, x_st[hit])
                found |= hit
    assert found.all()
    # the comparison has teeth: a neighbouring pixel differs in the neighbourhood means
    moved = tile_frame(dyn, st, cfg, slice(0, 1), slice(6, 7), slice(8, 9))
    j = b.columns.index("blh_m3")
    first = (sf["row"] == 6) & (sf["col"] == 7) & (sf["date"] == sf["date"].min())
    assert b.transform(moved)[0, j] != x_st[first.to_numpy()][0, j]


def test_attach_values_known(inputs, frame):
    _, _, stations, daily = inputs
    px = station_pixels(stations, GRID)
    row = daily.iloc[5]
    r = px.set_index("station").loc[row["station"]]
    hit = frame[(frame.row == r.row) & (frame.col == r.col) & (frame.date == row["date"])]
    assert hit["value"].item() == pytest.approx(row["value"])
    assert frame["value"].isna().sum() == len(frame) - len(daily)


def test_out_of_fold_has_no_leakage():
    # a memorizing model (exact lookup of training rows, else 0) reveals any leak:
    # in-sample it reproduces y; out of fold it must never see the row it predicts
    rng = np.random.default_rng(0)
    n = 120
    X = np.arange(n, dtype=float)[:, None]
    y = rng.normal(5, 1, n)
    groups = np.repeat(np.arange(12), 10)

    def memorize(Xtr, ytr, Xte):
        table = dict(zip(Xtr[:, 0], ytr))
        return np.array([table.get(x, 0.0) for x in Xte[:, 0]])

    assert np.allclose(memorize(X, y, X), y)
    oof = out_of_fold(memorize, X, y, groups, n_splits=4, seed=1)
    assert np.all(oof == 0.0)
    # and with a real model the predictions of a station come from folds without it
    seen = []

    def spy(Xtr, ytr, Xte):
        seen.append((set(Xtr[:, 0].astype(int) // 10), set(Xte[:, 0].astype(int) // 10)))
        return np.full(len(Xte), ytr.mean())

    out_of_fold(spy, X, y, groups, n_splits=4, seed=1)
    assert all(not (tr & te) for tr, te in seen)


def test_static_neighbourhood_means_by_brute_force(inputs, frame):
    # each <static>_m<k> at a station pixel is the plain mean of the in-grid k x k window
    _, st, _, _ = inputs
    cfg = FeatureConfig()
    assert cfg.static_sizes and cfg.spatial_static
    ny, nx = GRID.shape
    one = frame.drop_duplicates(["row", "col"])
    for v in cfg.spatial_static:
        a = st[v].values.astype(np.float64)
        for k in cfg.static_sizes:
            h = k // 2
            want = [
                a[max(r - h, 0) : min(r + h + 1, ny), max(c - h, 0) : min(c + h + 1, nx)].mean()
                for r, c in zip(one["row"], one["col"])
            ]
            np.testing.assert_allclose(one[f"{v}_m{k}"], want, rtol=1e-5)
    # they are spatial-sampling columns: plain inputs do not have them
    b = FeatureBuilder(cfg, GRID)
    assert "population_m11" in b.technique_columns("spatial")
    assert "population_m11" not in FeatureBuilder(cfg.plain(), GRID).columns


def test_static_neighbourhood_means_in_tiles_need_their_own_halo(inputs):
    # a tile far smaller than the widest static window still gets the whole-field mean
    dyn, st, _, _ = inputs
    cfg = FeatureConfig(sizes=(3,), static_sizes=(9,), spatial_static=("population",))
    tf = tile_frame(dyn, st, cfg, slice(0, 1), slice(5, 7), slice(6, 8))
    whole = neighbourhood_mean(st["population"].values, 9)[5:7, 6:8]
    np.testing.assert_array_equal(tf["population_m9"].to_numpy(), whole.ravel())


def test_random_id_blocks():
    cfg = FeatureConfig(rid_block=4, seed=3, convolution=False)
    b = FeatureBuilder(cfg, GRID)
    assert b.rid.shape == (-(-GRID.nlat // 4), -(-GRID.nlon // 4))
    rows = np.array([0, 3, 0, 4, GRID.nlat - 1])
    cols = np.array([0, 3, 4, 0, GRID.nlon - 1])
    fr = pd.DataFrame({"date": pd.Timestamp("2018-08-20"), "row": rows, "col": cols})
    for v in list(cfg.dynamic) + list(cfg.static) + cfg.spatial_columns:
        fr[v] = 0.0
    rid = b.base_matrix(fr)[:, b.base_columns.index("rid")]
    assert rid[0] == rid[1]  # same 4 x 4 block
    assert len({rid[0], rid[2], rid[3], rid[4]}) == 4  # other blocks, other IDs
    # state round trip keeps the block grid; a per-pixel state does not fit it
    b2 = FeatureBuilder.from_state(cfg, GRID, b.state())
    np.testing.assert_array_equal(b2.base_matrix(fr), b.base_matrix(fr))
    with pytest.raises(ValueError, match="rid_block"):
        FeatureBuilder(cfg, GRID, rid=RandomID(GRID.shape, seed=3))
    with pytest.raises(ValueError, match="rid_block"):
        FeatureBuilder(FeatureConfig(rid_block=0), GRID)


def test_convolution_of_fields_ignores_ids_location_and_calendar(frame):
    fields = FeatureConfig(m1=8, m2=4, seed=1, conv_inputs="fields")
    b = FeatureBuilder(fields, GRID).fit(frame)
    read = [b.base_columns[j] for j in b.conv_input_index]
    assert not {"rid", "lon_n", "lat_n", "doy", "year", "wond"} & set(read)
    assert {"so2_column", "population", "blh_m3", "population_m11"} <= set(read)
    conv = slice(len(b.base_columns), None)
    x = b.transform(frame)[:, conv]
    # other random IDs and other days leave the fields' convolution unchanged ...
    other = FeatureBuilder(dataclasses.replace(fields, seed=9), GRID)
    other.conv = b.conv
    later = frame.assign(date=frame["date"] + pd.Timedelta(days=100))
    np.testing.assert_array_equal(other.transform(frame)[:, conv], x)
    np.testing.assert_array_equal(b.transform(later)[:, conv], x)
    # ... but not the convolution of all columns
    ball = FeatureBuilder(dataclasses.replace(fields, conv_inputs="all"), GRID).fit(frame)
    xa = ball.transform(frame)[:, conv]
    assert not np.array_equal(ball.transform(later)[:, conv], xa)
    with pytest.raises(ValueError, match="conv_inputs"):
        FeatureConfig(conv_inputs="some")


def test_declustering_is_off_by_default(frame):
    assert np.all(FeatureBuilder(FeatureConfig(), GRID).weights(frame) == 1.0)
    w = FeatureBuilder(FeatureConfig(decluster_deg=0.1), GRID).weights(frame)
    assert w.mean() == pytest.approx(1.0) and w.std() >= 0


def test_upwind_offsets_known_directions():
    # at the equator a 0.01-degree cell is 1.112 km both ways; 3.4 km is 3 cells
    u = np.array([5.0, 0.0, -2.0, 0.0, 3.0, np.nan])
    v = np.array([0.0, 4.0, 0.0, 0.0, 3.0, 1.0])
    drow, dcol = upwind_offsets(u, v, 3.4, np.zeros(6), 0.01)
    # westerly -> upwind is west; southerly (blowing north) -> upwind is south (row +);
    # easterly -> east; calm and missing wind -> the pixel itself; south-westerly -> SW
    np.testing.assert_array_equal(drow, [0, 3, 0, 0, 2, 0])
    np.testing.assert_array_equal(dcol, [-3, 0, 3, 0, -2, 0])
    # at 60 N a cell spans half the km along longitude: twice the columns
    _, dcol60 = upwind_offsets([5.0], [0.0], 3.4, [60.0], 0.01)
    assert dcol60[0] == -6


def test_upwind_samples_at_stations_by_brute_force(inputs, frame):
    dyn, st, _, _ = inputs
    cfg = FeatureConfig()
    assert cfg.upwind_km and set(cfg.upwind_columns) <= set(frame.columns)
    ny, nx = GRID.shape
    h = cfg.upwind_size // 2
    pop = st["population"].values.astype(np.float64)
    d = cfg.upwind_km[0]
    moved = 0
    for rec in frame.sample(40, random_state=0).itertuples():
        t = list(dyn["time"].values).index(np.datetime64(rec.date, "ns"))
        u = float(dyn["u10"].values[t, rec.row, rec.col])
        v = float(dyn["v10"].values[t, rec.row, rec.col])
        km_y = GRID.res * 111.195
        km_x = km_y * np.cos(np.deg2rad(GRID.lat[rec.row]))
        r = int(np.clip(rec.row + np.rint(v / np.hypot(u, v) * d / km_y), 0, ny - 1))
        c = int(np.clip(rec.col + np.rint(-u / np.hypot(u, v) * d / km_x), 0, nx - 1))
        moved += (r, c) != (rec.row, rec.col)
        want = pop[max(r - h, 0) : r + h + 1, max(c - h, 0) : c + h + 1].mean()
        assert getattr(rec, f"population_up{d:g}") == pytest.approx(want, rel=1e-5)
    assert moved > 10  # the check has teeth: most samples are away from the pixel
    assert set(cfg.upwind_columns) <= set(FeatureBuilder(cfg, GRID).technique_columns("spatial"))
