"""Cross-validation splitters with the scikit-learn interface ``split(X, y, groups)``.

All splitters are seeded and deterministic: the same inputs and seed give the same folds.
Each ``split`` yields ``(train_index, test_index)`` integer arrays into the rows of ``X``.

- :class:`SampleKFold`: random rows (the optimistic "sample CV").
- :class:`SiteKFold`: rows grouped by station (``groups``); a station is never split across
  folds. Stations are shuffled with the seed, then assigned largest-first to the fold with
  the fewest rows so far, so folds are balanced in rows.
- :class:`BlockKFold`: spatial blocks of ``block_size`` degrees (lon/lat from ``X``); folds
  are sets of whole blocks, assigned like stations (cf. verde's ``BlockKFold``).
- :class:`RegionHoldout`: one region held out per fold. Regions are named bounding boxes or
  polygons or, when none are given, the spatial blocks of ``block_size`` degrees. Rows outside
  every region are always in the training part; a named region holding no row is an error.

Coordinates are taken from ``X``: a DataFrame with ``lon`` and ``lat`` columns, or an array
whose first two columns are lon and lat.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "SampleKFold",
    "SiteKFold",
    "BlockKFold",
    "RegionHoldout",
    "block_ids",
    "lonlat_of",
    "make_splitter",
]


def lonlat_of(X) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of each row of ``X`` (DataFrame columns or first two columns)."""
    if isinstance(X, pd.DataFrame):
        missing = [c for c in ("lon", "lat") if c not in X.columns]
        if missing:
            raise KeyError(f"coordinates: columns {missing} not in X (columns {list(X.columns)})")
        return X["lon"].to_numpy(np.float64), X["lat"].to_numpy(np.float64)
    a = np.asarray(X, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"coordinates: expected an (n, >=2) array of lon, lat; found {a.shape}")
    return a[:, 0], a[:, 1]


def block_ids(lon, lat, block_size: float, origin: tuple[float, float] | None = None) -> np.ndarray:
    """Integer id of the ``block_size``-degree square containing each point.

    Blocks are aligned on ``origin`` (default: the south-west corner of the points, rounded
    down to a multiple of ``block_size``); the id is ``row * ncol + col`` of that block grid.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if block_size <= 0:
        raise ValueError(f"block_size must be > 0 degrees; found {block_size}")
    if origin is None:
        origin = (
            np.floor(np.min(lon) / block_size) * block_size,
            np.floor(np.min(lat) / block_size) * block_size,
        )
    col = np.floor((lon - origin[0]) / block_size).astype(np.int64)
    row = np.floor((lat - origin[1]) / block_size).astype(np.int64)
    if col.min() < 0 or row.min() < 0:
        raise ValueError(f"points lie west/south of the block origin {origin}")
    return row * (int(col.max()) + 1) + col


def _assign_groups(labels: np.ndarray, n_splits: int, seed: int, what: str) -> np.ndarray:
    """Fold number per row: whole groups, shuffled, largest first to the lightest fold."""
    uniq, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(uniq) < n_splits:
        raise ValueError(f"{n_splits} folds need at least {n_splits} {what}; found {len(uniq)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    # stable sort by size (descending) of the shuffled order: ties keep the random order
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(n_splits, dtype=np.int64)
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += counts[g]
    return fold_of_group[inv.ravel()]


class _FoldSplitter(abc.ABC):
    """Common machinery: subclasses define ``fold_of(X, groups)`` (fold number per row)."""

    n_splits: int

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    @abc.abstractmethod
    def fold_of(self, X, groups=None) -> np.ndarray:
        """Fold number of each row of ``X``."""

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        fold = self.fold_of(X, groups)
        idx = np.arange(len(fold))
        for k in range(self.n_splits):
            test = fold == k
            yield idx[~test], idx[test]


class _SeededKFold(_FoldSplitter):
    """``n_splits`` (>= 2) folds drawn with ``seed``."""

    def __init__(self, n_splits: int = 10, seed: int = 0):
        if n_splits < 2:
            raise ValueError(f"n_splits must be >= 2; found {n_splits}")
        self.n_splits = int(n_splits)
        self.seed = int(seed)


class SampleKFold(_SeededKFold):
    """K folds of randomly permuted rows.

    Parameters
    ----------
    n_splits : int
        Number of folds (>= 2).
    seed : int
        Seed of the permutation.
    """

    def fold_of(self, X, groups=None) -> np.ndarray:
        n = len(X)
        if n < self.n_splits:
            raise ValueError(f"{self.n_splits} folds need at least {self.n_splits} rows; found {n}")
        perm = np.random.default_rng(self.seed).permutation(n)
        fold = np.empty(n, dtype=np.int64)
        for k, part in enumerate(np.array_split(perm, self.n_splits)):
            fold[part] = k
        return fold


class SiteKFold(_SeededKFold):
    """K folds of whole stations (``groups`` = station id per row).

    Parameters
    ----------
    n_splits : int
        Number of folds; at most the number of stations.
    seed : int
        Seed of the station shuffle.
    """

    def fold_of(self, X, groups=None) -> np.ndarray:
        if groups is None:
            raise ValueError("SiteKFold.split needs groups (the station of each row)")
        groups = np.asarray(groups)
        if len(groups) != len(X):
            raise ValueError(f"groups has {len(groups)} entries; X has {len(X)} rows")
        return _assign_groups(groups, self.n_splits, self.seed, "stations")


class BlockKFold(_FoldSplitter):
    """K folds of whole spatial blocks of ``block_size`` degrees.

    Parameters
    ----------
    block_size : float
        Block edge in degrees.
    n_splits : int
        Number of folds; at most the number of non-empty blocks.
    seed : int
        Seed of the block shuffle.
    origin : (lon, lat), optional
        South-west corner of the block grid (default from the data; see :func:`block_ids`).
    """

    def __init__(
        self,
        block_size: float,
        n_splits: int = 5,
        seed: int = 0,
        origin: tuple[float, float] | None = None,
    ):
        if n_splits < 2:
            raise ValueError(f"n_splits must be >= 2; found {n_splits}")
        self.block_size = float(block_size)
        self.n_splits = int(n_splits)
        self.seed = int(seed)
        self.origin = origin

    def blocks(self, X) -> np.ndarray:
        lon, lat = lonlat_of(X)
        return block_ids(lon, lat, self.block_size, self.origin)

    def fold_of(self, X, groups=None) -> np.ndarray:
        return _assign_groups(self.blocks(X), self.n_splits, self.seed, "non-empty blocks")


class RegionHoldout(_FoldSplitter):
    """One held-out region per fold.

    Parameters
    ----------
    regions : mapping name -> box or polygon, optional
        Named regions: a box ``(west, south, east, north)`` in degrees (west/south inclusive,
        east/north exclusive) or a polygon ring ``[(lon, lat), ...]`` (boundary inclusive).
        A row in several regions belongs to the first. Empty or None: use blocks instead.
    block_size : float, optional
        With no ``regions``: every non-empty block of this size is a region (named
        ``block_<id>``), ordered by a seeded shuffle.
    seed : int
        Seed of the block order (blocks only).

    Notes
    -----
    ``n_splits`` (and ``names``) are known after the first ``split``/``fold_of`` call when
    regions are blocks; with named regions they are fixed. A named region that holds no row
    raises ``ValueError`` naming it (a fold with nothing to test is a configuration error).
    """

    def __init__(
        self,
        regions: Mapping[str, Sequence] | None = None,
        block_size: float | None = None,
        seed: int = 0,
    ):
        from .mask import geometry_from_config

        if not regions and not block_size:
            raise ValueError("RegionHoldout needs regions (named boxes) or a block_size")
        self.regions: dict[str, tuple[float, ...] | dict] = {}
        for name, value in (regions or {}).items():
            v = list(value)
            if len(v) == 4 and all(isinstance(x, (int, float, np.number)) for x in v):
                box = tuple(map(float, v))
                if box[0] >= box[2] or box[1] >= box[3]:
                    raise ValueError(
                        f"region {name!r}: expected (west, south, east, north) with west < east "
                        f"and south < north; found {box}"
                    )
                self.regions[name] = box
            else:
                self.regions[name] = geometry_from_config(v, f"region {name!r}")
        self.block_size = block_size
        self.seed = int(seed)
        self.names: list[str] = list(self.regions)
        self.n_splits = len(self.names)

    def fold_of(self, X, groups=None) -> np.ndarray:
        """Region number per row; -1 for rows outside every region."""
        from .mask import points_inside

        lon, lat = lonlat_of(X)
        fold = np.full(len(lon), -1, dtype=np.int64)
        if self.regions:
            for k, region in enumerate(self.regions.values()):
                if isinstance(region, dict):
                    inside = points_inside(region, lon, lat)
                else:
                    w, s, e, n = region
                    inside = (lon >= w) & (lon < e) & (lat >= s) & (lat < n)
                fold[(fold < 0) & inside] = k
            empty = [n for k, n in enumerate(self.names) if not (fold == k).any()]
            if empty:
                keys = ", ".join(f"cv.regions.{n}" for n in empty)
                raise ValueError(
                    f"regions {empty} hold no station of the {len(lon)} rows; move or drop "
                    f"them (config: {keys})"
                )
            return fold
        ids = block_ids(lon, lat, float(self.block_size))
        uniq = np.unique(ids)
        order = np.random.default_rng(self.seed).permutation(len(uniq))
        self.names = [f"block_{int(uniq[i])}" for i in order]
        self.n_splits = len(uniq)
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[order] = np.arange(len(uniq))
        return rank[np.searchsorted(uniq, ids)]

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _, tr, te in self.split_named(X, y, groups):
            yield tr, te

    def split_named(self, X, y=None, groups=None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Like :meth:`split`, with the region's name first."""
        fold = self.fold_of(X, groups)
        idx = np.arange(len(fold))
        for k in range(self.n_splits):
            test = fold == k
            if test.any():
                yield self.names[k], idx[~test], idx[test]


def make_splitter(scheme: str, *, seed: int = 0, **kw):
    """A splitter for a scheme name of the scores.csv contract.

    ``sample_cv`` -> :class:`SampleKFold` (``n_splits``), ``site_cv`` -> :class:`SiteKFold`
    (``n_splits``), ``block_cv`` -> :class:`BlockKFold` (``block_size``, ``n_splits``),
    ``region`` -> :class:`RegionHoldout` (``regions`` or ``block_size``).
    """
    if scheme == "sample_cv":
        return SampleKFold(kw.get("n_splits", 10), seed)
    if scheme == "site_cv":
        return SiteKFold(kw.get("n_splits", 10), seed)
    if scheme == "block_cv":
        return BlockKFold(kw["block_size"], kw.get("n_splits", 5), seed, kw.get("origin"))
    if scheme == "region":
        return RegionHoldout(kw.get("regions"), kw.get("block_size"), seed)
    raise ValueError(
        f"unknown CV scheme {scheme!r}; expected sample_cv, site_cv, block_cv or region"
    )
