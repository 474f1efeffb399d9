"""Gauge-aware precipitation fusion: gauge input channels, residual correction, wet/dry
threshold, and the choice of the product's variant by inner site CV on training gauges.

The product of a precipitation run is one of these **variants**, each a network and a
post-processing step:

- network ``mpfm`` (the sources and static layers only) or ``mpfm_g`` (the same network
  with two more input channels: ``gauge_idw``, the IDW field of the day's training gauges,
  and ``gauge_dist``, the distance in km to the nearest reporting training gauge;
  :func:`patch_gauge_channels` on station patches, :class:`GridGaugeFields` on the grid);
- residual correction ``none``, ``idw`` or ``ok``: the network's residuals at the training
  gauges (gauge minus prediction at the gauge's cell) interpolated to every cell and added
  back, as regression kriging does (:func:`correct`);
- a blend with a gauge-only interpolation (``idw``, ``ok`` or their ``mean``, chosen by
  leave-one-gauge-out CV on the training gauges) with fused weight 1, 0.9, ..., 0.1 or 0
  (0: the gauge-only interpolation itself, chosen where the fused sources show no gain over
  the gauges at the validation gauges, see :func:`select_product`);
- a wet-day threshold: values below it become 0 (rain occurrence), fitted on the same
  inner-CV predictions to maximise the CSI at the first score threshold without raising
  the RMSE by more than 1 %.

**Inner site CV.** The networks are trained as cross-fitted members
(:func:`gridfuse.models.train.train_members`): member *k* stops early on its own fold of
the training gauges and never fits them, so its predictions there are out of sample, and
its gauge channels come from the other training gauges only.  For each member,
:func:`select_product` scores every variant at the member's validation gauges exactly as the
product would be made (the residuals come from the member's fit gauges, the gauge channels
from them too) and picks the variant with the lowest RMSE over all members' validation
gauges.  Evaluation gauges and any OSSE truth never enter.

**No leakage.** In a training sample a gauge's own value never enters its gauge channels
(``loo``); held-out gauges are never among the sources of any field.

**Bad input** (counted and logged): a day with fewer than ``min_gauges`` reporting training
gauges has no gauge fields; the product then uses ``mpfm`` for that day and no residual
correction (:func:`fallback_days`).  Duplicate coordinates are averaged for kriging; gauges
outside the grid never reach ``patches.nc`` (:func:`gridfuse.samples.station_cells`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .gauges import (
    WEIGHT_CACHE_MB,
    GaugeInterpolator,
    WeightCache,
    choose_gauge_method,
    distance_km,
    idw_apply,
    idw_weights,
    nearest_distance,
)
from .io import atomic_path, read_netcdf

logger = logging.getLogger(__name__)

__all__ = [
    "GAUGE_CHANNELS",
    "CORRECTIONS",
    "patch_gauge_channels",
    "GridGaugeFields",
    "fallback_days",
    "product_memory_mb",
    "correct",
    "ProductSpec",
    "member_predictions",
    "select_product",
    "network_at_stations",
    "product_at_stations",
    "build_product",
    "build_set_product",
    "fit_correction",
    "train_precip_network",
    "product_blocks",
    "load_product",
    "training_gauges",
]

GAUGE_CHANNELS = ("gauge_idw", "gauge_dist")
CORRECTIONS = ("none", "idw", "ok")
#: weights of the fused estimate when blended with the gauge-only interpolation (0: the
#: gauge-only interpolation itself)
BLENDS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
#: the wet threshold may raise the inner-CV RMSE by at most this fraction
WET_RMSE_TOL = 0.01
WET_THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


# --------------------------------------------------------------------------- gauge fields
def patch_gauge_channels(
    y: np.ndarray,
    st_lat: np.ndarray,
    st_lon: np.ndarray,
    cell_lat: np.ndarray,
    cell_lon: np.ndarray,
    sources: np.ndarray,
    power: float,
    *,
    loo: bool = True,
    min_gauges: int = 3,
) -> np.ndarray:
    """Gauge channels on every station's patch cells: ``(station, time, py, px, 2)``.

    Parameters
    ----------
    y : ndarray ``(station, time)`` gauge values
    st_lat, st_lon : ndarray ``(station,)`` gauge coordinates
    cell_lat, cell_lon : ndarray ``(station, py, px)`` cell centres of each patch (NaN outside
        the grid)
    sources : ndarray of int
        Stations whose values make the fields (the fit gauges).
    power : float
        IDW power.
    loo : bool
        Leave a station's own value out of the fields on its own patch.
    min_gauges : int
        Days with fewer reporting source gauges get NaN channels.
    """
    sources = np.asarray(sources, dtype=int)
    n_st, n_t = y.shape
    shape = cell_lat.shape[1:]
    out = np.full((n_st, n_t, *shape, 2), np.nan, dtype="f4")
    vals = y[sources].T  # (time, source)
    for s in range(n_st):
        cl, cn = cell_lat[s].ravel(), cell_lon[s].ravel()
        inside = np.isfinite(cl) & np.isfinite(cn)
        d = distance_km(cl[inside], cn[inside], st_lat[sources], st_lon[sources])
        if loo:
            d[:, sources == s] = np.inf
        w = idw_weights(d, power)
        w[~np.isfinite(d)] = 0.0
        field_ = np.full((n_t, cl.size), np.nan, dtype="f4")
        dist = np.full((n_t, cl.size), np.nan, dtype="f4")
        field_[:, inside] = idw_apply(vals, w, min_gauges)
        dist[:, inside] = nearest_distance(vals, d)
        dist[~np.isfinite(field_)] = np.nan
        out[s, ..., 0] = field_.reshape(n_t, *shape)
        out[s, ..., 1] = dist.reshape(n_t, *shape)
    return out


class GridGaugeFields:
    """Gauge channels on the whole grid from fixed gauges (the training gauges).

    Parameters
    ----------
    lat, lon : gauge coordinates
    values : ndarray ``(time, gauge)`` of the days ``times``
    times : DatetimeIndex
    grid : :class:`gridfuse.grid.Grid`
    power, min_gauges : IDW power; days with fewer reporting gauges are NaN (fallback)
    """

    def __init__(self, lat, lon, values, times, grid, power: float, min_gauges: int = 3):
        self.values = np.asarray(values, dtype="f4")
        self.times = pd.DatetimeIndex(times)
        self.grid = grid
        self.min_gauges = int(min_gauges)
        lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")
        self.d = distance_km(lat2, lon2, lat, lon).astype("f4")
        self.w = idw_weights(self.d, power).astype("f4")
        # nearest-gauge distance fields of the sets of reporting gauges met so far
        self.nearest = WeightCache(max_mb=128)

    def day_values(self, days: pd.DatetimeIndex) -> np.ndarray:
        """Gauge values ``(n, gauge)`` of the days (NaN for days outside the table)."""
        pos = self.times.get_indexer(pd.DatetimeIndex(days))
        out = np.full((len(days), self.values.shape[1]), np.nan, dtype="f4")
        out[pos >= 0] = self.values[pos[pos >= 0]]
        return out

    def read(self, days: pd.DatetimeIndex) -> np.ndarray:
        """``(n, 2, nlat, nlon)``: the IDW field and the nearest-gauge distance (km)."""
        v = self.day_values(days)
        f = idw_apply(v, self.w, self.min_gauges)
        ok = np.isfinite(v)
        patterns, which = np.unique(ok, axis=0, return_inverse=True)
        which = which.ravel()
        dist = np.empty_like(f)
        for k, pat in enumerate(patterns):  # the distance field of each set of gauges
            dist[which == k] = self.nearest.get(
                np.packbits(pat).tobytes(), lambda pat=pat: nearest_distance(pat[None], self.d)
            )
        dist[~np.isfinite(f)] = np.nan
        return np.stack([f, dist], axis=1).reshape(len(days), 2, *self.grid.shape)


def product_memory_mb(
    cells: int, gauges: int, time_block: int, *, cache_mb: float = WEIGHT_CACHE_MB
) -> float:
    """Peak host memory (MB) of the product's gauge steps in :func:`product_blocks`, beside
    the network's own (:func:`gridfuse.predict.predict_memory_mb`).

    The gauge fields' distances and weights (two ``cells x gauges`` float32 arrays), the
    kept weights of the residual and the gauge-only interpolators (each at most
    ``cache_mb``, at least one set of weights) and of the distance fields (128 MB), the
    cell coordinates (float64) and about four block-sized float32 temporaries of the
    correction (the network's block, the interpolated residuals, the gauge field, the
    output).
    """
    weights = cells * gauges * 4 / 2**20
    kept = 2 * max(weights, min(cache_mb, 4 * weights)) + 128
    coords = 2 * cells * 8 / 2**20
    temps = 4 * time_block * cells * 4 / 2**20
    return 2 * weights + kept + coords + temps


def fallback_days(values: np.ndarray, min_gauges: int) -> np.ndarray:
    """Boolean ``(time,)``: days with fewer than ``min_gauges`` reporting gauges."""
    return np.isfinite(np.asarray(values)).sum(axis=1) < int(min_gauges)


# --------------------------------------------------------------------------- correction
def correct(
    pred: np.ndarray,
    resid: np.ndarray,
    g_lat,
    g_lon,
    t_lat,
    t_lon,
    interp: GaugeInterpolator | None,
    wet_threshold: float = 0.0,
    gauge_only: np.ndarray | None = None,
    blend: float = 1.0,
) -> np.ndarray:
    """Residual-corrected, blended, wet/dry-thresholded prediction ``(time, target)``.

    ``pred (time, target)`` is the network's prediction at the targets, ``resid (time,
    gauge)`` its residuals (gauge - prediction) at the gauges ``g_lat, g_lon``.  With an
    ``interp``, the interpolated residuals are added (a day without enough gauges gets no
    correction); the result is clipped at 0.  With ``blend < 1`` it is averaged with the
    gauge-only interpolation ``gauge_only (time, target)`` (weights ``blend`` and ``1 -
    blend``; where that is missing the fused value stays).  Values below ``wet_threshold``
    are then set to 0.
    """
    out = np.asarray(pred, dtype="f4").copy()
    if interp is not None:
        c = interp.predict(g_lat, g_lon, resid, t_lat, t_lon)
        out += np.nan_to_num(c, nan=0.0)
    np.maximum(out, 0.0, out=out)
    if blend < 1.0 and gauge_only is not None:
        g = np.maximum(np.where(np.isfinite(gauge_only), gauge_only, out), 0.0)
        out = (blend * out + (1.0 - blend) * g).astype("f4")
    if wet_threshold > 0:
        out[out < wet_threshold] = 0.0
    return out


@dataclass
class ProductSpec:
    """The product's variant, its fitted residual interpolator and wet threshold."""

    net: str = "mpfm"
    correction: str = "none"
    interp: dict | None = None
    wet_threshold: float = 0.0
    min_gauges: int = 3
    gauge_power: float = 2.0
    gauge_method: str = "ok"
    blend: float = 1.0
    gauge_interp: dict | None = None
    table: list = field(default_factory=list)

    @property
    def interpolator(self) -> GaugeInterpolator | None:
        return GaugeInterpolator.from_dict(self.interp) if self.interp else None

    @property
    def gauge_interpolator(self) -> GaugeInterpolator | None:
        """The gauge-only interpolator blended in (None when ``blend`` is 1)."""
        if self.blend >= 1.0 or not self.gauge_interp:
            return None
        return GaugeInterpolator.from_dict(self.gauge_interp)

    def save(self, path) -> None:
        with atomic_path(path, suffix=".json") as tmp:
            Path(tmp).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path) -> ProductSpec:
        return cls(**json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------- selection
def _with_gauges(x, y, st_lat, st_lon, cell_lat, cell_lon, sources, power, loo, min_gauges):
    g = patch_gauge_channels(
        y, st_lat, st_lon, cell_lat, cell_lon, sources, power, loo=loo, min_gauges=min_gauges
    )
    return np.concatenate([x, g], axis=-1)


def member_predictions(
    model,
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    geo: Mapping[str, np.ndarray],
    stations: np.ndarray,
    *,
    device: str = "auto",
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each member's ``(fit, val, pred)``: its fit and validation station indices and its
    predictions ``(station, time)`` at ``stations`` (NaN elsewhere), made as the product
    would make them from the member's fit gauges only.

    ``geo`` holds ``lat, lon`` (station) and ``cell_lat, cell_lon`` (patch cells).
    """
    from .models.train import FusionModel, predict_stations

    ids = [str(s) for s in geo["ids"]]
    members = model.meta.get("members")
    if not members:
        raise ValueError(f"{model.name}: no cross-fitted members recorded (meta 'members')")
    out = []
    gauge = any(c in GAUGE_CHANNELS for c in model.channels)
    power = float(model.meta.get("gauge_power", 2.0))
    min_g = int(model.meta.get("min_gauges", 3))
    for k, m in enumerate(members):
        fit = np.array([ids.index(s) for s in m["fit_stations"]], int)
        val = np.array([ids.index(s) for s in m["val_stations"]], int)
        single = FusionModel(
            [model.nets[k]],
            model.standardizer,
            name=model.name,
            target=model.target,
            y_scale=model.y_scale,
            volume=[model.volume[k]],
            meta=model.meta,
        )
        xx, chans = x, list(channels)
        if gauge:
            xx = _with_gauges(
                x[stations],
                y[stations],
                geo["lat"][stations],
                geo["lon"][stations],
                geo["cell_lat"][stations],
                geo["cell_lon"][stations],
                np.flatnonzero(np.isin(stations, fit)),
                power,
                False,
                min_g,
            )
            chans = chans + list(GAUGE_CHANNELS)
        else:
            xx = x[stations]
        pred = np.full(y.shape, np.nan, dtype="f4")
        pred[stations] = predict_stations(single, xx, chans, device=device)
        out.append((fit, val, pred))
    return out


def _score(obs, pred):
    ok = np.isfinite(obs) & np.isfinite(pred)
    return float(np.sqrt(np.mean((obs[ok] - pred[ok]) ** 2))) if ok.any() else np.inf


def _csi(obs, pred, thr):
    ok = np.isfinite(obs) & np.isfinite(pred)
    eo, ep = obs[ok] >= thr, pred[ok] >= thr
    h, m, f = np.sum(eo & ep), np.sum(eo & ~ep), np.sum(~eo & ep)
    return h / (h + m + f) if h + m + f else 0.0


def _gauges_suffice(oof, obs, best):
    """The best gauge-only variant (blend 0) if its mean squared error per validation gauge
    is within one standard error of the ``best`` variant's (the fused sources must earn their
    place), else ``best``."""

    def per_gauge(p):
        e = (obs - p) ** 2
        ok = np.isfinite(e)
        return np.where(ok, e, 0).sum(1) / np.maximum(ok.sum(1), 1), ok.any(1)

    gauge_only = [k for k in oof if k[3] == 0.0]
    if not gauge_only or best in gauge_only:
        return best
    g = min(gauge_only, key=lambda k: _score(obs, oof[k]))
    mb, okb = per_gauge(oof[best])
    mg, okg = per_gauge(oof[g])
    d = (mg - mb)[okb & okg]
    se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
    return g if d.mean() <= se else best


def _gauge_only_oof(folds, y, geo, days, methods, min_gauges) -> dict[str, np.ndarray]:
    """Each gauge-only interpolation at the members' validation gauges, from their fit gauges.

    ``{method: (station, day)}`` over the scored ``days``; NaN where a gauge is never validated.
    """
    lat, lon, clat, clon = geo["lat"], geo["lon"], geo["centre_lat"], geo["centre_lon"]
    out = {}
    for method in methods:
        g_all = np.full(y.shape, np.nan, dtype="f4")
        for fit, val, _ in folds:
            gi = GaugeInterpolator(method, min_gauges=min_gauges)
            gi.fit(lat[fit], lon[fit], y[fit][:, days].T)
            g = gi.predict(lat[fit], lon[fit], y[fit][:, days].T, clat[val], clon[val])
            g_all[np.ix_(val, days)] = g.T
        out[method] = g_all[:, days]
    return out


def _corrected_oof(mem, corr, y, geo, days, min_gauges) -> np.ndarray:
    """One network's members with residual correction ``corr``, at their validation gauges.

    Returns (station, day) over the scored ``days``; the residuals come from each member's fit
    gauges, as in the product.
    """
    lat, lon, clat, clon = geo["lat"], geo["lon"], geo["centre_lat"], geo["centre_lon"]
    pred_all = np.full(y.shape, np.nan, dtype="f4")
    for fit, val, pred in mem:
        p = pred[val][:, days].T  # (time, val)
        if corr == "none":
            c = correct(p, None, None, None, None, None, None)
        else:
            resid = (y[fit] - pred[fit])[:, days].T
            interp = GaugeInterpolator(corr, min_gauges=min_gauges)
            interp.fit(lat[fit], lon[fit], resid)
            c = correct(p, resid, lat[fit], lon[fit], clat[val], clon[val], interp)
        pred_all[np.ix_(val, days)] = c.T
    return pred_all[:, days]


def _variant_oof(members, y, geo, days, gauge_only, blends, min_gauges):
    """Every variant's out-of-fold predictions and their RMSE table.

    Returns ``(table, oof)``: a frame with one row per variant (net, correction, gauge, blend,
    rmse) and ``{(net, correction, gauge, blend): (station, day)}``.  The unblended variant
    appears once (gauge ``none``), the gauge-only one (blend 0) once per method.
    """
    obs = y[:, days]
    first_net, first_method = next(iter(members)), next(iter(gauge_only))
    rows, oof = [], {}
    for net, mem in members.items():
        for corr in CORRECTIONS:
            fused = _corrected_oof(mem, corr, y, geo, days, min_gauges)
            for method, g in gauge_only.items():
                for blend in blends:
                    if blend == 1.0 and method != first_method:
                        continue  # the unblended variant once
                    if blend == 0.0 and (net, corr) != (first_net, "none"):
                        continue  # the gauge-only variant once per method
                    b = correct(fused, None, None, None, None, None, None, 0.0, g, blend)
                    b[~np.isfinite(fused)] = np.nan
                    key = (net, corr, method if blend < 1 else "none", blend)
                    oof[key] = b
                    rows.append(
                        dict(zip(("net", "correction", "gauge", "blend"), key, strict=True))
                        | {"rmse": _score(obs, b)}
                    )
    return pd.DataFrame(rows), oof


def _wet_threshold(obs, chosen, csi_threshold, wet_rmse_tol) -> tuple[float, dict]:
    """The wet-day threshold with the best CSI at ``csi_threshold`` among those raising the
    RMSE by at most ``wet_rmse_tol`` (ties: the smaller threshold); returns it and the CSI of
    every admitted threshold."""
    r0 = _score(obs, chosen)
    csi = {}
    for t in WET_THRESHOLDS:
        pt = np.where(chosen < t, 0.0, chosen)
        if wet_rmse_tol is not None and _score(obs, pt) > r0 * (1.0 + wet_rmse_tol):
            continue
        csi[t] = _csi(obs, pt, csi_threshold)
    return max(csi, key=lambda t: (round(csi[t], 6), -t)), csi


def select_product(
    members: Mapping[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    y: np.ndarray,
    geo: Mapping[str, np.ndarray],
    days: np.ndarray,
    *,
    min_gauges: int = 3,
    csi_threshold: float = 0.1,
    gauge_power: float = 2.0,
    blends: Sequence[float] = BLENDS,
    wet_rmse_tol: float | None = WET_RMSE_TOL,
    rule: str = "1se",
    gauge_methods: Sequence[str] = CORRECTIONS[1:],
) -> ProductSpec:
    """Choose the network, residual correction, blend and wet threshold by inner site CV.

    ``members``: ``{net: member_predictions(...)}`` (the same folds for every net); only the
    ``days`` (indices) are scored.  Every (network, correction) is scored at each member's
    validation gauges, also blended with a gauge-only interpolation (each of
    ``gauge_methods``, from the member's fit gauges) with fused weight ``blends`` (weight 0 is
    the gauge-only interpolation itself).  ``rule="min"``: the lowest RMSE wins;
    ``rule="1se"``: the same, unless the best gauge-only variant's mean squared error per
    validation gauge is within one standard error of the winner's -- then the gauges suffice
    and the fused sources, which have not shown a gain there, are left out (a one-standard-error
    rule: with a few validation gauges the lowest RMSE of many variants is mostly noise).
    Then the wet threshold that maximises the CSI at ``csi_threshold`` among those that raise
    the RMSE by at most ``wet_rmse_tol`` (a fraction; None: no limit).  The returned spec's
    interpolators are fitted later on all training gauges (:func:`fit_correction`).
    """
    if rule not in ("min", "1se"):
        raise ValueError(f"product selection rule must be 'min' or '1se', got {rule!r}")
    obs = y[:, days]
    folds = next(iter(members.values()))
    gauge_only = _gauge_only_oof(folds, y, geo, days, gauge_methods, min_gauges)
    table, oof = _variant_oof(members, y, geo, days, gauge_only, blends, min_gauges)
    best = table.loc[table["rmse"].idxmin()]
    key = (best["net"], best["correction"], best["gauge"], float(best["blend"]))
    if rule == "1se":
        key = _gauges_suffice(oof, obs, key)
    chosen = oof[key]
    wet, csi = _wet_threshold(obs, chosen, csi_threshold, wet_rmse_tol)
    logger.info(
        "inner site CV (RMSE at %d validation gauges):\n%s\nchosen: %s + %s correction, "
        "blend %.2f with %s; wet threshold %.2f mm/day (CSI@%g %.3f, without %.3f)",
        int(np.isfinite(chosen).any(axis=1).sum()),
        table.round(4).to_string(index=False),
        *key[:2],
        key[3],
        key[2],
        wet,
        csi_threshold,
        csi[wet],
        csi[0.0],
    )
    return ProductSpec(
        net=str(key[0]),
        correction=str(key[1]),
        wet_threshold=float(wet),
        min_gauges=int(min_gauges),
        gauge_power=float(gauge_power),
        gauge_method=str(key[2]) if key[3] < 1 else "ok",
        blend=float(key[3]),
        table=table.to_dict("records"),
    )


def fit_correction(spec: ProductSpec, lat, lon, resid, values=None) -> ProductSpec:
    """Fit the chosen residual interpolator on the training gauges' residuals ``(time,
    gauge)`` and, for a blend, the gauge-only interpolator on their ``values``."""
    if spec.correction != "none":
        interp = GaugeInterpolator(spec.correction, min_gauges=spec.min_gauges)
        spec.interp = interp.fit(lat, lon, resid).to_dict()
    if spec.blend < 1.0 and values is not None:
        gi = GaugeInterpolator(spec.gauge_method, min_gauges=spec.min_gauges)
        spec.gauge_interp = gi.fit(lat, lon, values).to_dict()
    return spec


def network_at_stations(
    spec: ProductSpec,
    models: Mapping[str, object],
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    geo: Mapping[str, np.ndarray],
    fit: np.ndarray,
    stations: np.ndarray,
    *,
    device: str = "auto",
) -> np.ndarray:
    """The chosen network's prediction ``(station, time)`` at ``stations`` (NaN elsewhere),
    gauge fields from the ``fit`` gauges (the product's own, not left-one-out), and the
    network without gauge inputs on fallback days."""
    from .models.train import predict_stations

    stations = np.asarray(stations, int)
    out = np.full(y.shape, np.nan, dtype="f4")
    base = predict_stations(models["mpfm"], x[stations], channels, device=device)
    pred = base
    if spec.net == "mpfm_g":
        xx = _with_gauges(
            x[stations],
            y[stations],
            geo["lat"][stations],
            geo["lon"][stations],
            geo["cell_lat"][stations],
            geo["cell_lon"][stations],
            np.flatnonzero(np.isin(stations, fit)),
            spec.gauge_power,
            False,
            spec.min_gauges,
        )
        pred = predict_stations(
            models["mpfm_g"], xx, list(channels) + list(GAUGE_CHANNELS), device=device
        )
        fb = fallback_days(y[fit].T, spec.min_gauges)
        if fb.any():
            logger.info(
                "%d days with fewer than %d reporting gauges: the model without gauge inputs",
                int(fb.sum()),
                spec.min_gauges,
            )
            pred[:, fb] = base[:, fb]
    out[stations] = pred
    return out


def product_at_stations(
    spec: ProductSpec,
    models: Mapping[str, object],
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    geo: Mapping[str, np.ndarray],
    fit: np.ndarray,
    targets: np.ndarray,
    *,
    device: str = "auto",
) -> np.ndarray:
    """The product's values ``(station, time)`` at the ``targets`` (NaN elsewhere), made from
    the ``fit`` gauges exactly as the gridded product is (same networks, fields, correction,
    threshold and fallback days)."""
    both = np.union1d(fit, targets)
    pred = network_at_stations(spec, models, x, y, channels, geo, fit, both, device=device)
    resid = (y[fit] - pred[fit]).T
    out = np.full(y.shape, np.nan, dtype="f4")
    gi = spec.gauge_interpolator
    g = None
    if gi is not None:
        g = gi.predict(
            geo["lat"][fit],
            geo["lon"][fit],
            y[fit].T,
            geo["centre_lat"][targets],
            geo["centre_lon"][targets],
        )
    out[targets] = correct(
        pred[targets].T,
        resid,
        geo["lat"][fit],
        geo["lon"][fit],
        geo["centre_lat"][targets],
        geo["centre_lon"][targets],
        spec.interpolator,
        spec.wet_threshold,
        g,
        spec.blend,
    ).T
    return out


def build_product(
    models: Mapping[str, object],
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    geo: Mapping[str, np.ndarray],
    train: np.ndarray,
    days: np.ndarray,
    *,
    min_gauges: int = 3,
    csi_threshold: float = 0.1,
    device: str = "auto",
) -> ProductSpec:
    """Choose the variant by inner site CV (:func:`select_product`) and fit its residual
    interpolator on the training gauges' residuals of the chosen network (made as the
    product makes them).  The gauge-only interpolation that may be blended in (``idw``,
    ``ok`` or their mean) is chosen first by leave-one-gauge-out CV over all training gauges
    (:func:`gridfuse.gauges.choose_gauge_method`), which scores it at every training gauge
    rather than only at the members' validation gauges.  ``models``: ``{"mpfm": ..., "mpfm_g": ...}`` (either may be
    absent except ``mpfm``), trained as cross-fitted members on ``train`` stations."""
    train = np.asarray(train, int)
    members = {
        n: member_predictions(m, x, y, channels, geo, train, device=device)
        for n, m in models.items()
    }
    power = float(models["mpfm_g"].meta.get("gauge_power", 2.0)) if "mpfm_g" in models else 2.0
    method, _ = choose_gauge_method(
        geo["lat"][train], geo["lon"][train], y[train][:, days].T, min_gauges=min_gauges
    )
    spec = select_product(
        members,
        y,
        geo,
        days,
        min_gauges=min_gauges,
        csi_threshold=csi_threshold,
        gauge_power=power,
        gauge_methods=(method,),
    )
    pred = network_at_stations(spec, models, x, y, channels, geo, train, train, device=device)
    resid = (y[train] - pred[train])[:, days].T
    return fit_correction(spec, geo["lat"][train], geo["lon"][train], resid, y[train][:, days].T)


def build_set_product(
    patches: str | Path,
    models: Mapping[str, object],
    sources: Sequence[str],
    year_sets: Mapping[int, Sequence[str]],
    *,
    min_gauges: int = 3,
    csi_threshold: float = 0.1,
    device: str = "auto",
) -> ProductSpec:
    """:func:`build_product` of one source-availability set from ``patches.nc``.

    The set's days are those of the years whose sources (``year_sets``, ``{year:
    sources}``) are ``sources``.  Only they are scored, so only they and the days their
    windows reach (``window // 2`` of the networks either side,
    :func:`gridfuse.samples.window_span`) are read: the networks' predictions and the gauge
    channels (the same day's gauges) of the set's days, and so the spec, are those the whole
    file gives, while memory and time scale with the set's days, not the period's.
    """
    from .evaluate import day_set_keys
    from .samples import PatchSampler, patch_times, window_span

    times = patch_times(patches)
    keys = day_set_keys(times, year_sets)
    days = np.flatnonzero(keys == "-".join(sources))
    if days.size == 0:
        raise ValueError(f"{patches}: no day of the set {'-'.join(sources)}")
    span = window_span(days, max(m.window for m in models.values()), len(times))
    ps = PatchSampler.open(patches, time=span)
    logger.info(
        "set %s: %d days, read %d of %d (%s..%s)",
        "-".join(sources),
        days.size,
        span.stop - span.start,
        len(times),
        times[span.start].date(),
        times[span.stop - 1].date(),
    )
    x, channels = ps.source_inputs(sources)
    y, geo, train = ps.y, ps.geo(), np.flatnonzero(ps.roles == "train")
    del ps  # the patches of every channel, copied to the set's channels in x
    return build_product(
        models,
        x,
        y,
        channels,
        geo,
        train,
        days - span.start,
        min_gauges=min_gauges,
        csi_threshold=csi_threshold,
        device=device,
    )


def train_precip_network(
    net: str,
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    sources: Sequence[str],
    train: np.ndarray,
    geo: Mapping[str, np.ndarray],
    *,
    sizes: dict,
    train_cfg,
    val_fraction: float = 0.2,
    min_gauges: int = 3,
    split_seed: int = 0,
):
    """Train ``mpfm``/``cnn3d``/``biconvlstm`` or ``mpfm_g`` (MPFM with gauge channels) as
    cross-fitted members on the ``train`` stations.  For ``mpfm_g`` the IDW power of the
    gauge field is chosen by leave-one-gauge-out CV on the training gauges."""
    from .gauges import choose_idw_power
    from .models.train import train_members

    train = np.asarray(train, int)
    extra, extra_ch, meta = None, (), {}
    if net == "mpfm_g":
        d = distance_km(geo["lat"][train], geo["lon"][train], geo["lat"][train], geo["lon"][train])
        power, _ = choose_idw_power(y[train].T, d)

        def extra(fit, loo):
            return patch_gauge_channels(
                y,
                geo["lat"],
                geo["lon"],
                geo["cell_lat"],
                geo["cell_lon"],
                fit,
                power,
                loo=loo,
                min_gauges=min_gauges,
            )

        extra_ch, meta = GAUGE_CHANNELS, {"gauge_power": power, "min_gauges": min_gauges}
    model, curve = train_members(
        x,
        y,
        channels,
        train,
        station_ids=geo["ids"],
        val_fraction=val_fraction,
        extra=extra,
        extra_channels=extra_ch,
        split_seed=split_seed,
        net="mpfm" if net == "mpfm_g" else net,
        sizes=sizes,
        train=train_cfg,
        log_channels=list(sources),
        required_channels=list(sources),
    )
    model.name = net
    model.meta.update(meta, net=net, sources=list(sources))
    return model, curve


def product_blocks(
    spec: ProductSpec,
    models: Mapping[str, object],
    read_inputs,
    gauges: GridGaugeFields,
    rows: np.ndarray,
    cols: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    days: pd.DatetimeIndex,
    *,
    flag_sources=None,
    **predict_kw,
):
    """Yield ``(day_slice, values)`` blocks of the product on the grid (``(day_slice,
    values, flags)`` with ``flag_sources``: the sources' quality layer, see
    :func:`gridfuse.predict.predict_grid`).

    ``read_inputs(channels)`` returns a reader ``days -> (n, C, nlat, nlon)`` of those
    (source and static) channels; ``gauges`` gives the gauge channels and the training
    gauges' values, which sit at grid cells ``rows, cols`` and coordinates ``lat, lon``.
    The chosen network predicts the blocks (:func:`gridfuse.predict.predict_grid`); on
    fallback days (too few reporting gauges) ``mpfm`` predicts instead; then the residuals
    at the gauges' cells are interpolated and added, and the wet threshold applied
    (:func:`correct`), exactly as :func:`product_at_stations` does at stations.
    """
    from .predict import predict_grid

    days = pd.DatetimeIndex(days)
    net = models[spec.net]
    base_ch = [c for c in net.channels if c not in GAUGE_CHANNELS]
    if spec.net == "mpfm_g":
        if net.channels[len(base_ch) :] != list(GAUGE_CHANNELS):
            raise ValueError(f"{spec.net}: gauge channels must come last, got {net.channels}")
        read_base = read_inputs(base_ch)

        def read(span):
            return np.concatenate([read_base(span), gauges.read(span)], axis=1)

    else:
        read = read_inputs(base_ch)
    fb = fallback_days(gauges.day_values(days), spec.min_gauges)
    if fb.any():
        logger.warning(
            "%d of %d days have fewer than %d reporting training gauges: no gauge fields or "
            "residual correction there%s",
            int(fb.sum()),
            len(days),
            spec.min_gauges,
            ", the model without gauge inputs predicts them" if spec.net == "mpfm_g" else "",
        )
    interp, ginterp = spec.interpolator, spec.gauge_interpolator
    nlat, nlon = gauges.grid.shape
    clat, clon = np.meshgrid(gauges.grid.lat, gauges.grid.lon, indexing="ij")
    for sl, block, *flags in predict_grid(net, read, days, flag_sources=flag_sources, **predict_kw):
        block = np.array(block, dtype="f4")
        bdays = days[sl]
        bfb = fb[sl]
        if spec.net == "mpfm_g" and bfb.any():
            base_read = read_inputs(models["mpfm"].channels)
            for sub, vals in predict_grid(models["mpfm"], base_read, bdays[bfb], **predict_kw):
                block[np.flatnonzero(bfb)[sub]] = vals
        values = gauges.day_values(bdays)
        resid = values - block[:, rows, cols]
        g = ginterp.predict(lat, lon, values, clat.ravel(), clon.ravel()) if ginterp else None
        out = correct(
            block.reshape(len(bdays), -1),
            resid,
            lat,
            lon,
            clat.ravel(),
            clon.ravel(),
            interp,
            spec.wet_threshold,
            g,
            spec.blend,
        )
        yield (sl, out.reshape(len(bdays), nlat, nlon), *flags)


# --------------------------------------------------------------------------- product inputs
def load_product(spec_path, model_paths: Mapping[str, str | Path], sources: Sequence[str]):
    """The product spec and its networks, checked against the year's sources.

    ``model_paths``: ``{net: path}`` (``mpfm`` and ``mpfm_g``).  Returns ``(spec, models)``;
    a network trained on other sources (or in another order) than ``sources`` is an error
    naming both, since its input channels would not match.
    """
    from .models.train import FusionModel

    spec = ProductSpec.load(spec_path)
    models = {net: FusionModel.load(path) for net, path in model_paths.items()}
    for m in models.values():
        if m.meta.get("sources", list(sources)) != list(sources):
            raise ValueError(f"{m.name} was trained on {m.meta['sources']}, year needs {sources}")
    return spec, models


def training_gauges(patches_path, grid, spec: ProductSpec) -> tuple[GridGaugeFields, dict]:
    """The training gauges of ``samples/patches.nc`` for the product on the grid.

    Returns their gauge fields (:class:`GridGaugeFields`, with the spec's IDW power and
    minimum gauge count) and ``{"lat", "lon", "row", "col"}`` of each training gauge (its
    coordinates and grid cell), in the order :func:`product_blocks` expects.
    """
    with read_netcdf(patches_path) as ds:
        train = ds["role"].values.astype(str) == "train"
        at = {k: ds[k].values[train] for k in ("lat", "lon", "row", "col")}
        values = ds["y"].values[train].T
        times = pd.DatetimeIndex(ds["time"].values)
    fields = GridGaugeFields(
        at["lat"], at["lon"], values, times, grid, spec.gauge_power, spec.min_gauges
    )
    return fields, at
