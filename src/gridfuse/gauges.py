"""Gauge-only interpolation and gauge fields: IDW, ordinary kriging, nearest-gauge distance.

Everything here works on daily gauge values ``(time, gauge)`` at gauge coordinates and
interpolates them to target points (grid cells, other gauges):

- :func:`idw_weights` / :func:`idw_apply`: inverse-distance weighting of the gauges that
  report on each day (a numpy kernel: the weights of all gauges are computed once, each day
  masks the missing ones); :func:`choose_idw_power` picks the power by leave-one-gauge-out
  CV on the training gauges.
- :class:`Variogram` and :func:`krige`: ordinary kriging through PyKrige with a
  **climatological** variogram.  With 20-50 gauges a day (most of them dry on many days) a
  variogram fitted per day is poorly identified (nugget and range trade off, dry days have
  none), whereas the shape of the spatial correlation is a property of the rain climate.
  The variogram is therefore fitted once on the training gauges, pooling every day's
  empirical semivariances scaled by that day's variance (a correlogram with sill 1); the
  ordinary-kriging weights do not depend on the sill, so the daily scale is not needed.
- :func:`nearest_distance`: distance (km) to the nearest reporting gauge.
- :class:`GaugeInterpolator`: ``fit`` on training gauges (IDW power or variogram), then
  ``predict`` at any points from any day's values.

Distances are in km on a local equirectangular projection (:func:`local_xy`), adequate for
regional domains.  Bad input is a counted, logged decision, never a crash: a day with fewer
than ``min_gauges`` reporting gauges gives NaN (callers fall back to a model without gauge
inputs), duplicate coordinates are averaged for kriging (its system is singular otherwise).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "KM_PER_DEG",
    "local_xy",
    "distance_km",
    "idw_weights",
    "idw_apply",
    "loo_idw",
    "choose_idw_power",
    "nearest_distance",
    "Variogram",
    "krige",
    "GaugeInterpolator",
    "WeightCache",
    "ok_weights",
    "IDW_POWERS",
    "choose_gauge_method",
]

KM_PER_DEG = 111.195
IDW_POWERS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


def local_xy(lat, lon, lat0: float, lon0: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (km) east and north of ``(lat0, lon0)`` (local equirectangular)."""
    lat = np.asarray(lat, dtype="f8")
    lon = np.asarray(lon, dtype="f8")
    x = (lon - lon0) * KM_PER_DEG * np.cos(np.radians(lat0))
    y = (lat - lat0) * KM_PER_DEG
    return x, y


def distance_km(lat_a, lon_a, lat_b, lon_b) -> np.ndarray:
    """Distances (km) between every point a ``(..., )`` and every point b: ``(na, nb)``."""
    lat_a, lon_a = np.ravel(lat_a), np.ravel(lon_a)
    lat_b, lon_b = np.ravel(lat_b), np.ravel(lon_b)
    lat0 = float(np.mean(np.r_[lat_a, lat_b])) if lat_a.size + lat_b.size else 0.0
    xa, ya = local_xy(lat_a, lon_a, lat0, 0.0)
    xb, yb = local_xy(lat_b, lon_b, lat0, 0.0)
    return np.hypot(xa[:, None] - xb[None, :], ya[:, None] - yb[None, :])


def idw_weights(d: np.ndarray, power: float, min_km: float = 0.5) -> np.ndarray:
    """Inverse-distance weights ``1 / max(d, min_km) ** power`` (distances in km)."""
    return 1.0 / np.maximum(np.asarray(d, dtype="f8"), min_km) ** float(power)


def idw_apply(values: np.ndarray, w: np.ndarray, min_gauges: int = 1) -> np.ndarray:
    """Weighted mean of the reporting gauges of each day.

    Parameters
    ----------
    values : ndarray ``(time, gauge)``, NaN where a gauge has no value
    w : ndarray ``(target, gauge)`` weights (0 excludes a gauge from a target)
    min_gauges : int
        Days with fewer reporting gauges (with non-zero weight) give NaN.

    Returns
    -------
    ndarray ``(time, target)`` float32
    """
    w = np.asarray(w)
    dt = "f4" if w.dtype == np.float32 else "f8"  # float32 weights: float32 sums
    v = np.asarray(values, dtype=dt)
    ok = np.isfinite(v)
    num = np.where(ok, v, 0.0).astype(dt, copy=False) @ w.T
    den = ok.astype(dt) @ w.T
    pos = w > 0
    if pos.all():  # every gauge counts for every target (no excluded pairs)
        cnt = np.broadcast_to(ok.sum(axis=1)[:, None], num.shape)
    else:
        cnt = ok.astype("f4") @ pos.T.astype("f4")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[(cnt < max(1, min_gauges)) | ~(den > 0)] = np.nan
    return out.astype("f4", copy=False)


def loo_idw(values: np.ndarray, d: np.ndarray, power: float, min_gauges: int = 1) -> np.ndarray:
    """Leave-one-gauge-out IDW at the gauges themselves (``d`` is gauge x gauge)."""
    w = idw_weights(d, power)
    np.fill_diagonal(w, 0.0)
    return idw_apply(values, w, min_gauges)


def choose_idw_power(
    values: np.ndarray, d: np.ndarray, powers: Sequence[float] = IDW_POWERS
) -> tuple[float, dict[float, float]]:
    """The IDW power with the lowest leave-one-gauge-out RMSE over every gauge-day.

    Returns the power and ``{power: rmse}``.  With fewer than three gauges nothing can be
    chosen: power 2 (logged).
    """
    v = np.asarray(values, dtype="f8")
    if v.shape[1] < 3:
        logger.warning("IDW power: %d gauges, too few for CV; power 2", v.shape[1])
        return 2.0, {}
    table = {}
    for p in powers:
        pred = loo_idw(v, d, p)
        ok = np.isfinite(pred) & np.isfinite(v)
        table[float(p)] = float(np.sqrt(np.mean((pred[ok] - v[ok]) ** 2))) if ok.any() else np.inf
    best = min(table, key=table.get)
    logger.info(
        "IDW power %g chosen by leave-one-gauge-out CV (RMSE by power: %s)",
        best,
        {k: round(v, 3) for k, v in table.items()},
    )
    return best, table


def nearest_distance(values: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Distance (km) from each target to the nearest gauge reporting that day.

    ``values (time, gauge)``, ``d (target, gauge)`` (``inf`` excludes a gauge); returns
    ``(time, target)`` float32, NaN on days without any usable gauge.
    """
    ok = np.isfinite(np.asarray(values))
    out = np.full((ok.shape[0], d.shape[0]), np.inf)
    for g in range(d.shape[1]):  # a loop over gauges keeps memory at time x target
        dg = d[:, g]
        if not np.isfinite(dg).any():
            continue
        np.minimum(out, np.where(ok[:, g : g + 1], dg[None, :], np.inf), out=out)
    out[~np.isfinite(out)] = np.nan
    return out.astype("f4")


# --------------------------------------------------------------------------- kriging
@dataclass
class Variogram:
    """Exponential correlogram (sill 1): ``nugget + (1 - nugget)(1 - exp(-3 d / range_km))``.

    ``range_km`` is the practical range (95 % of the sill), as in PyKrige's exponential model.
    """

    nugget: float = 0.1
    range_km: float = 50.0
    n_days: int = 0

    def gamma(self, d: np.ndarray) -> np.ndarray:
        """Semivariance at distances ``d`` (km), PyKrige's exponential model (sill 1)."""
        d = np.asarray(d, dtype="f8")
        return self.nugget + (1.0 - self.nugget) * (1.0 - np.exp(-3.0 * d / self.range_km))

    @classmethod
    def fit(
        cls, values: np.ndarray, d: np.ndarray, *, n_lags: int = 12, min_gauges: int = 4
    ) -> Variogram:
        """Fit on the gauges' days: pooled semivariances of each day scaled by its variance.

        Days with fewer than ``min_gauges`` values or no variance (all dry) are skipped.
        """
        from scipy.optimize import least_squares

        v = np.asarray(values, dtype="f8")
        iu = np.triu_indices(v.shape[1], k=1)
        dist = d[iu]
        finite = np.isfinite(dist) & (dist > 0)
        if not finite.any():
            logger.warning("variogram: no gauge pairs; default %s", cls())
            return cls()
        edges = np.linspace(0.0, 0.5 * float(np.max(dist[finite])), n_lags + 1)
        lag = np.digitize(dist, edges) - 1
        inside = finite & (lag >= 0) & (lag < n_lags)
        total, count, n_days = np.zeros(n_lags), np.zeros(n_lags), 0
        for t in range(v.shape[0]):
            ok = np.isfinite(v[t])
            if ok.sum() < min_gauges:
                continue
            var = float(np.var(v[t, ok]))
            if var <= 1e-9:
                continue
            pair = inside & ok[iu[0]] & ok[iu[1]]
            g = 0.5 * (v[t, iu[0][pair]] - v[t, iu[1][pair]]) ** 2 / var
            total += np.bincount(lag[pair], weights=g, minlength=n_lags)
            count += np.bincount(lag[pair], minlength=n_lags)
            n_days += 1
        have = count > 0
        if have.sum() < 3:
            logger.warning("variogram: %d usable days; default %s", n_days, cls())
            return cls(n_days=n_days)
        centres = 0.5 * (edges[1:] + edges[:-1])[have]
        gamma = total[have] / count[have]

        def resid(p):
            nug, rng = p
            model = nug + (1 - nug) * (1 - np.exp(-3 * centres / rng))
            return np.sqrt(count[have]) * (model - gamma)

        top = 5.0 * float(edges[-1])
        fit = least_squares(
            resid, [0.2, 0.5 * edges[-1]], bounds=([0.0, 0.1], [0.99, max(top, 1.0)])
        )
        out = cls(float(fit.x[0]), float(fit.x[1]), n_days)
        logger.info(
            "climatological variogram from %d days: nugget %.3f, range %.1f km", n_days, *fit.x
        )
        return out


def _duplicate_groups(x, y):
    """First point of each distinct place (coordinates rounded to 1e-6 km) and the place of
    every point."""
    key = np.round(np.c_[x, y], 6)
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    if len(first) == len(key):  # no two at one place: the points in their own order
        return np.arange(len(key)), np.arange(len(key))
    return first, inv.ravel()


#: most MB of weights a :class:`GaugeInterpolator` keeps between calls
WEIGHT_CACHE_MB = 512.0
#: target points per block when kriging weights are solved (bounds memory at about
#: ``KRIGE_BLOCK x (gauges + 1) x 8`` bytes for each of a few arrays)
KRIGE_BLOCK = 131_072
#: distance (coordinate units, km) below which a target sits on a gauge (PyKrige's ``eps``)
KRIGE_EPS = 1e-10


def ok_weights(
    src_xy: tuple[np.ndarray, np.ndarray],
    dst_xy: tuple[np.ndarray, np.ndarray],
    vario: Variogram,
) -> np.ndarray:
    """Ordinary-kriging weights ``(target, gauge)`` (float32) of gauges ``src_xy`` at
    ``dst_xy`` (km).

    The system is PyKrige's (``OrdinaryKriging`` with the exponential model, sill 1, the
    variogram's nugget and range): ``-gamma`` between gauges with a zero diagonal, the
    unbiasedness row and column, and a target on a gauge (closer than ``KRIGE_EPS``) taking
    that gauge's value exactly.  Solved once for all targets, so every day on which the
    same gauges report is one matrix product.  Gauges at the same place share one weight
    equally (their values are averaged, as kriging's system is singular otherwise).
    """
    sx, sy = (np.asarray(a, dtype="f8").ravel() for a in src_xy)
    tx, ty = (np.asarray(a, dtype="f8").ravel() for a in dst_xy)
    first, inv = _duplicate_groups(sx, sy)
    ux, uy = sx[first], sy[first]
    n = len(ux)
    a = np.zeros((n + 1, n + 1))
    a[:n, :n] = -vario.gamma(np.hypot(ux[:, None] - ux[None, :], uy[:, None] - uy[None, :]))
    np.fill_diagonal(a, 0.0)
    a[n, :n] = a[:n, n] = 1.0
    a_inv_t = np.linalg.inv(a).T[:, :n].astype("f4")
    # -gamma(d) = (1 - nugget) exp(-3 d / range) - 1 off the gauges; 0 on a gauge
    scale, k = np.float32(1.0 - vario.nugget), np.float32(-3.0 / vario.range_km)
    w = np.empty((tx.size, n), dtype="f4")
    for lo in range(0, tx.size, KRIGE_BLOCK):
        hi = min(tx.size, lo + KRIGE_BLOCK)
        d2 = (tx[lo:hi, None] - ux[None, :]) ** 2
        d2 += (ty[lo:hi, None] - uy[None, :]) ** 2
        b = np.ones((hi - lo, n + 1), dtype="f4")
        g = b[:, :n]
        np.sqrt(d2, out=g, casting="same_kind")
        g *= k
        np.exp(g, out=g)
        g *= scale
        g -= 1.0
        g[d2 <= KRIGE_EPS**2] = 0.0
        np.matmul(b, a_inv_t, out=w[lo:hi])
    if n == len(sx):
        return w
    # spread each place's weight over the gauges there (their mean is what was kriged)
    return w[:, inv] / np.bincount(inv, minlength=n)[inv].astype("f4")


def _key(*arrays) -> bytes:
    """A digest of arrays (the cache key of weights that depend on coordinates)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.data)
    return h.digest()


class WeightCache:
    """Interpolation weights kept between calls with the same gauges and targets.

    The product predicts a year in blocks of days on the same grid from the same training
    gauges, so the weights of a set of reporting gauges are solved once per job rather than
    once per block.  At most ``max_mb`` of weights are kept (oldest dropped first).
    """

    def __init__(self, max_mb: float = 512.0):
        self.max_bytes = int(max_mb * 2**20)
        self._items: dict[bytes, np.ndarray] = {}

    def get(self, key: bytes, make) -> np.ndarray:
        if key in self._items:
            return self._items[key]
        value = make()
        if value.nbytes <= self.max_bytes:
            while self._items and self.nbytes + value.nbytes > self.max_bytes:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value
        return value

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._items.values())


def krige(
    values: np.ndarray,
    src_xy: tuple[np.ndarray, np.ndarray],
    dst_xy: tuple[np.ndarray, np.ndarray],
    vario: Variogram,
    *,
    min_gauges: int = 3,
    cache: WeightCache | None = None,
) -> np.ndarray:
    """Ordinary kriging of each day's reporting gauges at target points.

    ``values (time, gauge)``; coordinates in km.  Days with fewer than ``min_gauges``
    values at distinct places give NaN.  The days are grouped by which gauges report: the
    weights of a group are solved once (:func:`ok_weights`, PyKrige's system; a test holds
    them to PyKrige's own results) and kept in ``cache`` for later calls, then each day is
    a weighted sum (``benchmarks/gauge_correction.py`` compares the rate with PyKrige's
    ``execute`` day by day).  Returns ``(time, target)`` float32.
    """
    v = np.asarray(values, dtype="f8")
    sx, sy = (np.asarray(a, dtype="f8").ravel() for a in src_xy)
    tx, ty = (np.asarray(a, dtype="f8").ravel() for a in dst_xy)
    out = np.full((v.shape[0], tx.size), np.nan, dtype="f4")
    ok = np.isfinite(v)
    patterns, which = np.unique(ok, axis=0, return_inverse=True)
    which = which.ravel()
    base = _key(sx, sy, tx, ty, np.array([vario.nugget, vario.range_km])) if cache else b""
    n_dup = 0
    for k, pat in enumerate(patterns):
        days = np.flatnonzero(which == k)
        first, _ = _duplicate_groups(sx[pat], sy[pat])
        n_dup += (int(pat.sum()) - len(first)) * len(days)
        if len(first) < min_gauges:
            continue

        def make(pat=pat):
            return ok_weights((sx[pat], sy[pat]), (tx, ty), vario)

        w = cache.get(base + np.packbits(pat).tobytes(), make) if cache else make()
        out[days] = v[np.ix_(days, np.flatnonzero(pat))].astype("f4") @ w.T
    if n_dup:
        logger.warning("kriging: %d duplicate gauge coordinates averaged (gauge-days)", n_dup)
    return out


def choose_gauge_method(
    lat, lon, values: np.ndarray, methods: Sequence[str] = ("idw", "ok", "mean"), min_gauges=3
) -> tuple[str, dict[str, float]]:
    """The gauge-only interpolator with the lowest leave-one-gauge-out RMSE.

    Each gauge in turn is left out; the interpolators are fitted on the other gauges only
    (IDW power, variogram) and predict it from their daily ``values (time, gauge)``.
    Returns the method and ``{method: rmse}``; with fewer than three gauges the first method.
    """
    lat, lon = np.ravel(lat), np.ravel(lon)
    v = np.asarray(values, dtype="f8")
    n = lat.size
    if n < 3:
        logger.warning("gauge method: %d gauges, too few for CV; %s", n, methods[0])
        return methods[0], {}
    base = [m for m in ("idw", "ok") if m in methods or "mean" in methods]
    pred = {m: np.full(v.shape, np.nan) for m in base}
    for j in range(n):
        others = np.arange(n) != j
        for m in base:
            gi = GaugeInterpolator(m, min_gauges=min_gauges).fit(
                lat[others], lon[others], v[:, others]
            )
            pred[m][:, j] = gi.predict(lat[others], lon[others], v[:, others], lat[[j]], lon[[j]])[
                :, 0
            ]
    if "mean" in methods:
        pred["mean"] = 0.5 * (pred["idw"] + pred["ok"])
    table = {}
    for m in methods:
        p = np.maximum(pred[m], 0.0)
        ok = np.isfinite(p) & np.isfinite(v)
        table[m] = float(np.sqrt(np.mean((p[ok] - v[ok]) ** 2))) if ok.any() else np.inf
    best = min(methods, key=lambda m: table[m])
    logger.info(
        "gauge interpolation %s chosen by leave-one-gauge-out CV (RMSE: %s)",
        best,
        {k: round(x, 3) for k, x in table.items()},
    )
    return best, table


# --------------------------------------------------------------------------- interpolator
@dataclass
class GaugeInterpolator:
    """A gauge-only interpolator (``idw``, ``ok`` or ``mean``) fitted on training gauges.

    ``fit`` chooses the IDW power by leave-one-gauge-out CV, or fits the climatological
    variogram (``mean``: both); ``predict`` interpolates any day's values of those gauges to
    target points (``mean``: the average of the IDW and the kriging estimates, an equal-weight
    ensemble of the two interpolators, whose errors are not identical).
    """

    method: str = "idw"
    power: float = 2.0
    vario: Variogram | None = None
    min_gauges: int = 3

    def __post_init__(self):
        if self.method not in ("idw", "ok", "mean"):
            raise ValueError(
                f"gauge interpolation must be 'idw', 'ok' or 'mean', got {self.method!r}"
            )
        # weights of past calls (same gauges and targets): not a field, never saved
        self.cache = WeightCache(max_mb=WEIGHT_CACHE_MB)

    def parts(self) -> tuple[GaugeInterpolator, GaugeInterpolator]:
        """The ``idw`` and ``ok`` interpolators a ``mean`` averages, with this one's settings.

        They share this one's weight cache (the two kinds of weights have their own keys), so
        they are cheap to make per call and every later call reuses the weights.
        """
        idw = GaugeInterpolator("idw", self.power, self.vario, self.min_gauges)
        ok = GaugeInterpolator("ok", self.power, self.vario, self.min_gauges)
        idw.cache = ok.cache = self.cache
        return idw, ok

    @property
    def name(self) -> str:
        """The model name (:mod:`gridfuse.models.registry`): the method."""
        return self.method

    def fit(self, lat, lon, values) -> GaugeInterpolator:
        """Fit on gauges at ``lat, lon`` with daily ``values (time, gauge)``."""
        d = distance_km(lat, lon, lat, lon)
        if self.method in ("idw", "mean"):
            self.power, _ = choose_idw_power(values, d)
        if self.method in ("ok", "mean"):
            self.vario = Variogram.fit(values, d)
        return self

    def predict(self, lat, lon, values, dst_lat, dst_lon) -> np.ndarray:
        """``(time, target)`` values at ``dst_lat, dst_lon`` from gauges ``lat, lon``."""
        lat, lon = np.ravel(lat), np.ravel(lon)
        dst_lat, dst_lon = np.ravel(dst_lat), np.ravel(dst_lon)
        values = np.asarray(values)
        if lat.size == 0:
            return np.full((values.shape[0], dst_lat.size), np.nan, dtype="f4")
        if self.method == "mean":
            a, b = (part.predict(lat, lon, values, dst_lat, dst_lon) for part in self.parts())
            return (0.5 * (a + b)).astype("f4")
        if self.method == "idw":
            key = _key(lat, lon, dst_lat, dst_lon, np.array([self.power]))
            w = self.cache.get(
                key,
                lambda: idw_weights(distance_km(dst_lat, dst_lon, lat, lon), self.power).astype(
                    "f4"
                ),
            )
            return idw_apply(values, w, self.min_gauges)
        lat0 = float(np.mean(lat))
        return krige(
            values,
            local_xy(lat, lon, lat0, 0.0),
            local_xy(dst_lat, dst_lon, lat0, 0.0),
            self.vario or Variogram(),
            min_gauges=self.min_gauges,
            cache=self.cache,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vario"] = asdict(self.vario) if self.vario is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GaugeInterpolator:
        d = dict(d)
        if d.get("vario") is not None:
            d["vario"] = Variogram(**d["vario"])
        return cls(**d)
