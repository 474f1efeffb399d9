"""CV splitters: disjoint, covering, grouped, spatially contiguous, deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridfuse.cv import (
    BlockKFold,
    RegionHoldout,
    SampleKFold,
    SiteKFold,
    block_ids,
    make_splitter,
)


@pytest.fixture
def table():
    """30 stations with 5-40 days each, scattered over 2 x 2 degrees."""
    rng = np.random.default_rng(0)
    n_st = 30
    lon = rng.uniform(111.5, 113.5, n_st)
    lat = rng.uniform(37.0, 39.0, n_st)
    days = rng.integers(5, 40, n_st)
    st = np.repeat(np.arange(n_st), days)
    return pd.DataFrame(
        {
            "station": [f"s{i:02d}" for i in st],
            "lon": lon[st],
            "lat": lat[st],
            "x": rng.random(len(st)),
        }
    )


def _check_partition(splits, n):
    tests = [te for _, te in splits]
    for tr, te in splits:
        assert len(np.intersect1d(tr, te)) == 0
        assert len(tr) + len(te) == n
    allt = np.concatenate(tests)
    assert len(allt) == n and len(np.unique(allt)) == n  # every row tested exactly once


def test_sample_kfold(table):
    cv = SampleKFold(10, seed=1)
    splits = list(cv.split(table))
    assert len(splits) == 10 == cv.get_n_splits()
    _check_partition(splits, len(table))
    sizes = [len(te) for _, te in splits]
    assert max(sizes) - min(sizes) <= 1
    again = list(SampleKFold(10, seed=1).split(table))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))
    other = list(SampleKFold(10, seed=2).split(table))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits, other))


def test_site_kfold_never_splits_a_station(table):
    cv = SiteKFold(10, seed=3)
    splits = list(cv.split(table, groups=table["station"]))
    _check_partition(splits, len(table))
    seen = set()
    for tr, te in splits:
        st_te = set(table["station"].iloc[te])
        assert not st_te & set(table["station"].iloc[tr])
        assert not st_te & seen
        seen |= st_te
    assert seen == set(table["station"])  # every station tested once
    # balanced in rows: greedy assignment keeps folds within one station's size
    sizes = np.array([len(te) for _, te in splits])
    assert sizes.max() - sizes.min() <= table.groupby("station").size().max()
    with pytest.raises(ValueError, match="needs groups"):
        next(cv.split(table))
    with pytest.raises(ValueError, match="at least 40 stations"):
        next(SiteKFold(40).split(table, groups=table["station"]))


def test_site_kfold_seeded(table):
    a = SiteKFold(5, seed=0).fold_of(table, table["station"])
    b = SiteKFold(5, seed=0).fold_of(table, table["station"])
    c = SiteKFold(5, seed=9).fold_of(table, table["station"])
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_block_ids_known():
    lon = np.array([0.05, 0.49, 0.51, 1.2, 0.0])
    lat = np.array([0.0, 0.2, 0.7, 0.9, 0.5])
    ids = block_ids(lon, lat, 0.5, origin=(0.0, 0.0))
    # ncol = 3 (cols 0..2); (row, col): (0,0) (0,0) (1,1) (1,2) (1,0)
    assert ids.tolist() == [0, 0, 4, 5, 3]


def test_block_kfold_blocks_whole_and_contiguous(table):
    size = 0.5
    cv = BlockKFold(size, n_splits=4, seed=0)
    splits = list(cv.split(table))
    _check_partition(splits, len(table))
    blocks = cv.blocks(table)
    for tr, te in splits:
        # no block is split between train and test
        assert not set(blocks[te]) & set(blocks[tr])
        # each test block is one contiguous square of the block size
        for b in np.unique(blocks[te]):
            rows = table.iloc[te][blocks[te] == b]
            assert rows.lon.max() - rows.lon.min() < size
            assert rows.lat.max() - rows.lat.min() < size
            assert np.floor(rows.lon / size).nunique() == 1
            assert np.floor(rows.lat / size).nunique() == 1
    # stations stay whole as well (same coordinates -> same block)
    for tr, te in splits:
        assert not set(table.station.iloc[te]) & set(table.station.iloc[tr])


def test_region_holdout_boxes(table):
    regions = {"west": (111.5, 37.0, 112.5, 39.0), "northeast": (112.5, 38.0, 113.5, 39.0)}
    cv = RegionHoldout(regions)
    named = list(cv.split_named(table))
    assert [n for n, _, _ in named] == ["west", "northeast"]
    for name, tr, te in named:
        w, s, e, n = regions[name]
        t = table.iloc[te]
        assert ((t.lon >= w) & (t.lon < e) & (t.lat >= s) & (t.lat < n)).all()
        r = table.iloc[tr]
        assert not ((r.lon >= w) & (r.lon < e) & (r.lat >= s) & (r.lat < n)).any()
    # rows in the uncovered south-east quarter are never tested
    se = ((table.lon >= 112.5) & (table.lat < 38.0)).to_numpy()
    tested = np.concatenate([te for _, _, te in named])
    assert not se[tested].any()
    with pytest.raises(ValueError, match="west < east"):
        RegionHoldout({"bad": (113, 37, 112, 38)})
    # a named region with no station is an error naming its key
    with pytest.raises(ValueError, match=r"cv\.regions\.empty"):
        list(RegionHoldout({**regions, "empty": (100, 0, 101, 1)}).split_named(table))


def test_region_holdout_polygons(table):
    # a polygon region (boundary inclusive) holds out the stations inside it
    tri = [(111.5, 37.0), (113.5, 37.0), (111.5, 39.0)]
    cv = RegionHoldout({"tri": tri, "rest": (111.0, 36.0, 114.0, 40.0)})
    named = list(cv.split_named(table))
    assert [n for n, _, _ in named] == ["tri", "rest"]
    te = table.iloc[named[0][2]]
    assert ((te.lon - 111.5) + (te.lat - 37.0) <= 2.0).all()
    rest = table.iloc[named[1][2]]
    assert ((rest.lon - 111.5) + (rest.lat - 37.0) > 2.0).all()
    _check_partition([(tr, te) for _, tr, te in named], len(table))
    with pytest.raises(ValueError, match="polygon ring"):
        RegionHoldout({"bad": [(1, 2), (3, 4)]})


def test_region_holdout_blocks(table):
    cv = RegionHoldout(block_size=1.0, seed=4)
    splits = list(cv.split(table))
    _check_partition(splits, len(table))
    assert cv.n_splits == len(np.unique(block_ids(table.lon, table.lat, 1.0))) == len(splits)
    assert all(n.startswith("block_") for n in cv.names)


def test_make_splitter():
    assert isinstance(make_splitter("site_cv", n_splits=3), SiteKFold)
    assert make_splitter("block_cv", block_size=0.3).block_size == 0.3
    with pytest.raises(ValueError, match="unknown CV scheme"):
        make_splitter("loo")
