"""RF-MEP: random-forest merging of gridded precipitation products with gauges.

Baez-Villanueva et al. (2020, Remote Sensing of Environment 239, 111606; R package RFmerge)
merge several gridded precipitation products with rain gauges by a single random forest
whose covariates, for a pixel and a day, are

* the value of each gridded product at the pixel on that day,
* static covariates of the pixel (elevation; optionally others),
* the distance from the pixel to **each training gauge** (one covariate per gauge), which
  lets the forest learn the spatial structure that kriging-type methods model explicitly.

The forest is fitted on the gauge-days of the training gauges pooled over time (target: the
gauge value) and then predicts any pixel on any day, so it makes full grids.  Evaluation
gauges are never among the distance covariates nor the training rows.

Distances here are great-circle distances in km (RFmerge uses projected coordinates in
metres; a random forest is unaffected by the scale of a covariate).  The forest defaults
mirror R ``randomForest`` for regression as used by RFmerge: a third of the covariates tried
per split and leaves of at least 5 samples.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.ensemble import RandomForestRegressor

logger = logging.getLogger(__name__)

__all__ = ["RFMEP", "RFMEPRegressor", "haversine_km", "station_samples", "cross_val_predict"]

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance (km) between points, broadcasting the inputs (degrees)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2, dtype="f8") - np.asarray(lon1, dtype="f8"))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _as_rows(products, static, lat, lon):
    """float64 rows: products and static as ``(n, k)`` columns, lat/lon as ``(n,)``."""
    products = np.asarray(products, dtype="f8")
    static = np.asarray(static, dtype="f8")
    if products.ndim == 1:
        products = products[:, None]
    if static.ndim == 1:
        static = static[:, None]
    return products, static, np.asarray(lat, "f8").ravel(), np.asarray(lon, "f8").ravel()


class RFMEP:
    """Random-forest merging procedure (RF-MEP) as a fit/predict model.

    Parameters
    ----------
    n_estimators : int
        Trees in the forest.
    max_features : float, int or str
        Covariates tried per split (sklearn meaning); 1/3 as R ``randomForest`` regression.
    min_samples_leaf : int
        Minimum samples per leaf (R ``nodesize`` 5).
    distances : bool
        Add the distance to each training gauge as covariates (the "MEP" part); False gives
        a plain forest on product values and static covariates.
    random_state : int
        Seed of the forest.
    n_jobs : int
        Threads for fitting and prediction.

    Attributes
    ----------
    gauges_ : ndarray, shape (n_gauges, 2)
        ``(lat, lon)`` of the training gauges whose distances are covariates.
    feature_names_ : list of str
        Names of the covariate columns.
    forest_ : RandomForestRegressor
        The fitted forest.
    """

    def __init__(
        self,
        n_estimators: int = 200,
        *,
        max_features: float | int | str = 1 / 3,
        min_samples_leaf: int = 5,
        distances: bool = True,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.distances = distances
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ covariates
    def covariates(self, products, static, lat, lon) -> np.ndarray:
        """Covariate matrix ``[products | static | distance to each training gauge]``.

        Parameters
        ----------
        products : array, shape (n, n_products)
            Product values at each sample's pixel and day (mm/day).
        static : array, shape (n,) or (n, n_static)
            Elevation (and other static covariates) of each sample's pixel.
        lat, lon : array, shape (n,)
            Pixel-centre coordinates (degrees) of each sample.

        Returns
        -------
        ndarray, float32, shape (n, n_products + n_static + n_gauges)
        """
        products, static, lat, lon = _as_rows(products, static, lat, lon)
        n = products.shape[0]
        for name, arr in (("static", static), ("lat", lat), ("lon", lon)):
            if arr.shape[0] != n:
                raise ValueError(f"RF-MEP: {name} has {arr.shape[0]} rows, products have {n}")
        parts = [products, static]
        if self.distances:
            g = self.gauges_
            parts.append(haversine_km(lat[:, None], lon[:, None], g[None, :, 0], g[None, :, 1]))
        return np.concatenate(parts, axis=1).astype("float32")

    # ------------------------------------------------------------------ fit/predict
    def fit(
        self,
        products,
        static,
        lat,
        lon,
        y,
        *,
        gauges: np.ndarray | None = None,
        product_names: Sequence[str] | None = None,
    ) -> RFMEP:
        """Fit on training gauge-days.

        Parameters
        ----------
        products, static, lat, lon
            As in :meth:`covariates`, one row per training gauge-day.
        y : array, shape (n,)
            Gauge values (mm/day).
        gauges : array, shape (n_gauges, 2), optional
            ``(lat, lon)`` of the training gauges (distance covariates).  Default: the
            distinct ``(lat, lon)`` of the rows, i.e. the training gauges' pixels.
        product_names : sequence of str, optional
            Names for the product covariates (for ``feature_names_``).
        """
        lat = np.asarray(lat, dtype="f8").ravel()
        lon = np.asarray(lon, dtype="f8").ravel()
        if gauges is None:
            gauges = np.unique(np.column_stack([lat, lon]), axis=0)
        self.gauges_ = np.asarray(gauges, dtype="f8").reshape(-1, 2)
        X = self.covariates(products, static, lat, lon)
        y = np.asarray(y, dtype="f8").ravel()
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"RF-MEP: y has {y.shape[0]} rows, covariates {X.shape[0]}")
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if not ok.any():
            raise ValueError("RF-MEP: no training row has all covariates and the target")
        n_prod = np.asarray(products).reshape(X.shape[0], -1).shape[1]
        n_static = X.shape[1] - n_prod - (len(self.gauges_) if self.distances else 0)
        names = list(product_names or [f"product_{i}" for i in range(n_prod)])
        names += ["elevation"] + [f"static_{i}" for i in range(1, n_static)]
        if self.distances:
            names += [f"dist_gauge_{i}" for i in range(len(self.gauges_))]
        self.feature_names_ = names
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        self.forest_.fit(X[ok], y[ok])
        logger.info(
            "RF-MEP fitted: %d rows (%d dropped for NaN), %d covariates (%d gauge distances), "
            "%d trees",
            int(ok.sum()),
            int((~ok).sum()),
            X.shape[1],
            len(self.gauges_) if self.distances else 0,
            self.n_estimators,
        )
        return self

    def predict(self, products, static, lat, lon, *, chunk: int = 200_000) -> np.ndarray:
        """Predict rows (NaN where a covariate is missing); non-negative."""
        if not hasattr(self, "forest_"):
            raise RuntimeError("RF-MEP: call fit() before predict()")
        products, static, lat, lon = _as_rows(products, static, lat, lon)
        out = np.full(products.shape[0], np.nan, dtype="f8")
        for i in range(0, products.shape[0], chunk):
            s = slice(i, i + chunk)
            X = self.covariates(products[s], static[s], lat[s], lon[s])
            ok = np.isfinite(X).all(axis=1)
            if ok.any():
                out[s][ok] = self.forest_.predict(X[ok])
        return np.maximum(out, 0.0)

    def predict_grid(
        self,
        products: np.ndarray,
        static: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        *,
        block_days: int = 8,
    ) -> np.ndarray:
        """Predict full grids.

        Parameters
        ----------
        products : array, shape (time, nlat, nlon, n_products)
            The products on the target grid.
        static : array, shape (nlat, nlon) or (nlat, nlon, n_static)
            Elevation (and other static covariates) on the target grid.
        lat, lon : 1-D arrays
            Cell-centre coordinates of the grid.
        block_days : int
            Days predicted together (bounds memory).

        Returns
        -------
        ndarray, float32, shape (time, nlat, nlon)
        """
        products = np.asarray(products)
        nt, ny, nx, npr = products.shape
        static = np.asarray(static, dtype="f8").reshape(ny * nx, -1)
        glat, glon = np.meshgrid(np.asarray(lat, "f8"), np.asarray(lon, "f8"), indexing="ij")
        glat, glon = glat.ravel(), glon.ravel()
        out = np.empty((nt, ny, nx), dtype="float32")
        for t0 in range(0, nt, block_days):
            t1 = min(nt, t0 + block_days)
            k = t1 - t0
            pred = self.predict(
                products[t0:t1].reshape(k * ny * nx, npr),
                np.tile(static, (k, 1)),
                np.tile(glat, k),
                np.tile(glon, k),
            )
            out[t0:t1] = pred.reshape(k, ny, nx)
        return out


# ---------------------------------------------------------------------- station samples / CV
def station_samples(
    fields: Mapping[str, xr.DataArray],
    static: xr.DataArray | Mapping[str, xr.DataArray],
    stations: pd.DataFrame,
    daily: pd.DataFrame,
) -> pd.DataFrame:
    """Gauge-day rows with the covariates of the gauge's pixel.

    Parameters
    ----------
    fields : mapping name -> DataArray (time, lat, lon)
        The products on one common grid (mm/day).
    static : DataArray (lat, lon) or mapping name -> DataArray
        Elevation (and other static layers) on the same grid.
    stations : DataFrame
        ``station, lat, lon`` (the stations contract).
    daily : DataFrame
        ``station, date, value`` (the stations contract).

    Returns
    -------
    DataFrame
        ``station, date, obs, lat, lon`` (the pixel centre), one column per product and per
        static layer.  Gauges outside the grid and days without product fields are dropped.
    """
    if isinstance(static, xr.DataArray):
        static = {"elevation": static}
    first = next(iter(fields.values()))
    glat = first["lat"].values
    glon = first["lon"].values
    st = stations.set_index("station")
    row = np.abs(glat[None, :] - st["lat"].to_numpy()[:, None]).argmin(axis=1)
    col = np.abs(glon[None, :] - st["lon"].to_numpy()[:, None]).argmin(axis=1)
    dlat = abs(glat[1] - glat[0]) if glat.size > 1 else np.inf
    dlon = abs(glon[1] - glon[0]) if glon.size > 1 else np.inf
    inside = (np.abs(glat[row] - st["lat"].to_numpy()) <= dlat / 2 + 1e-9) & (
        np.abs(glon[col] - st["lon"].to_numpy()) <= dlon / 2 + 1e-9
    )
    if not inside.all():
        logger.info("%d gauge(s) outside the grid dropped", int((~inside).sum()))
    pix = pd.DataFrame({"row": row[inside], "col": col[inside]}, index=st.index[inside].astype(str))
    d = daily[daily["station"].astype(str).isin(pix.index)].copy()
    d["station"] = d["station"].astype(str)
    times = pd.DatetimeIndex(first["time"].values)
    ti = times.get_indexer(pd.DatetimeIndex(d["date"]))
    d = d[ti >= 0]
    ti = ti[ti >= 0]
    r = pix.loc[d["station"], "row"].to_numpy()
    c = pix.loc[d["station"], "col"].to_numpy()
    out = pd.DataFrame(
        {
            "station": d["station"].to_numpy(),
            "date": pd.DatetimeIndex(d["date"]).as_unit("ns"),
            "obs": d["value"].to_numpy(dtype="f8"),
            "lat": glat[r],
            "lon": glon[c],
        }
    )
    for name, da in fields.items():
        if da.shape[1:] != first.shape[1:] or da.sizes["time"] != times.size:
            raise ValueError(
                f"field {name!r} has shape {da.shape}, expected {(times.size,) + first.shape[1:]}"
            )
        out[name] = np.asarray(da.values)[ti, r, c].astype("f8")
    for name, da in static.items():
        if da.shape != first.shape[1:]:
            raise ValueError(f"static {name!r} has shape {da.shape}, expected {first.shape[1:]}")
        out[name] = np.asarray(da.values)[r, c].astype("f8")
    return out


def cross_val_predict(
    samples: pd.DataFrame,
    products: Sequence[str],
    static: Sequence[str] = ("elevation",),
    *,
    folds: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    **params,
) -> np.ndarray:
    """Out-of-fold RF-MEP predictions for every row of ``samples``.

    Parameters
    ----------
    samples : DataFrame
        From :func:`station_samples`.
    products, static : sequence of str
        Columns used as product and static covariates.
    folds : iterable of (train_index, test_index), optional
        Row-index splits grouped by station (e.g. from a ``split(X, y, groups)`` splitter);
        default: leave one station out.  The distance covariates of a fold are those of its
        training stations only.
    **params
        Passed to :class:`RFMEP`.

    Returns
    -------
    ndarray, shape (len(samples),)
        Predictions (NaN for rows in no test fold).
    """
    if folds is None:
        codes = pd.factorize(samples["station"])[0]
        folds = [
            (np.flatnonzero(codes != k), np.flatnonzero(codes == k)) for k in range(codes.max() + 1)
        ]
    pred = np.full(len(samples), np.nan)
    P = samples[list(products)].to_numpy("f8")
    S = samples[list(static)].to_numpy("f8")
    lat = samples["lat"].to_numpy("f8")
    lon = samples["lon"].to_numpy("f8")
    y = samples["obs"].to_numpy("f8")
    stn = samples["station"].to_numpy()
    for k, (tr, te) in enumerate(folds):
        tr, te = np.asarray(tr), np.asarray(te)
        leak = set(stn[tr]) & set(stn[te])
        if leak:
            raise ValueError(f"fold {k}: station(s) {sorted(leak)[:3]} in both train and test")
        model = RFMEP(**params).fit(
            P[tr], S[tr], lat[tr], lon[tr], y[tr], product_names=list(products)
        )
        pred[te] = model.predict(P[te], S[te], lat[te], lon[te])
    return pred


class RFMEPRegressor:
    """RF-MEP behind the ``fit(X, y)`` / ``predict(X)`` interface of the precip baselines.

    ``X`` columns are the products, then ``elevation``, ``lat`` and ``lon`` of the station
    cell (the layout :func:`gridfuse.evaluate.fit_baseline` builds from the patch channels).
    The training gauges are the distinct ``(lat, lon)`` of the fit rows, so a model fitted on
    training stations has distance covariates to those stations only.

    Parameters
    ----------
    n_products : int
        Number of leading product columns.
    seed, threads : int
        Forest seed and threads.
    params : dict, optional
        :class:`RFMEP` settings (``n_estimators``, ``max_features``, ``min_samples_leaf``,
        ``distances``).
    """

    name = "rf_mep"

    def __init__(self, n_products: int, *, seed: int = 0, threads: int = 1, params=None):
        self.n_products = int(n_products)
        p = dict(params or {})
        unknown = set(p) - {"n_estimators", "max_features", "min_samples_leaf", "distances"}
        if unknown:
            raise ValueError(f"rf_mep: unknown settings {sorted(unknown)}")
        self.model = RFMEP(random_state=seed, n_jobs=threads, **p)

    def _split(self, X):
        X = np.asarray(X, dtype="f8")
        k = self.n_products
        if X.ndim != 2 or X.shape[1] != k + 3:
            raise ValueError(
                f"rf_mep: X must have {k} product columns then elevation, lat, lon; got shape "
                f"{X.shape}"
            )
        return X[:, :k], X[:, k], X[:, k + 1], X[:, k + 2]

    def fit(self, X, y) -> RFMEPRegressor:
        P, elev, lat, lon = self._split(X)
        self.model.fit(P, elev, lat, lon, y)
        return self

    def predict(self, X) -> np.ndarray:
        P, elev, lat, lon = self._split(X)
        return self.model.predict(P, elev, lat, lon)
