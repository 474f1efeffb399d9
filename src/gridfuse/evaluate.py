"""Assembly of ``scores.csv`` for precipitation: sufficient statistics and score rows.

Scores over very large samples (every cell and day of a grid, year by year) are computed
from additive **sufficient statistics** (counts, sums, sums of squares and cross products,
absolute errors, contingency counts per threshold), so yearly partial results combine
exactly.  The definitions are those of :mod:`gridfuse.metrics` (RB in %, KGE 2012 form,
events are values >= threshold); tests check both against each other and xskillscore.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .models import registry

logger = logging.getLogger(__name__)

__all__ = [
    "SCORE_COLUMNS",
    "STAT_COLUMNS",
    "sufficient_stats",
    "add_stats",
    "scores_from_stats",
    "score_rows",
    "subset_name",
]

SCORE_COLUMNS = ["model", "scheme", "subset", "metric", "value", "n"]
_MOMENTS = ["n", "sp", "so", "spp", "soo", "spo", "sae"]


def _thr_key(t: float) -> str:
    return f"{float(t):g}"


def STAT_COLUMNS(thresholds: Sequence[float]) -> list[str]:  # noqa: N802 - a column list
    """Names of the statistics :func:`sufficient_stats` returns for these thresholds."""
    cols = list(_MOMENTS)
    for t in thresholds:
        k = _thr_key(t)
        cols += [f"hits@{k}", f"misses@{k}", f"false@{k}"]
    return cols


def sufficient_stats(obs, pred, thresholds: Sequence[float] = (0.1,)) -> dict[str, float]:
    """Additive statistics of the valid pairs (both finite) of ``obs`` and ``pred``.

    Sums are accumulated in float64.
    """
    o = np.asarray(obs, dtype="f8").ravel()
    p = np.asarray(pred, dtype="f8").ravel()
    if o.shape != p.shape:
        raise ValueError(f"obs and pred differ in size: {o.size} vs {p.size}")
    ok = np.isfinite(o) & np.isfinite(p)
    o, p = o[ok], p[ok]
    s = {
        "n": float(o.size),
        "sp": float(p.sum()),
        "so": float(o.sum()),
        "spp": float(p @ p),
        "soo": float(o @ o),
        "spo": float(p @ o),
        "sae": float(np.abs(p - o).sum()),
    }
    for t in thresholds:
        k = _thr_key(t)
        eo, ep = o >= t, p >= t
        s[f"hits@{k}"] = float(np.sum(eo & ep))
        s[f"misses@{k}"] = float(np.sum(eo & ~ep))
        s[f"false@{k}"] = float(np.sum(~eo & ep))
    return s


def add_stats(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """Combine the statistics of two disjoint samples."""
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in set(a) | set(b)}


def _div(a: float, b: float) -> float:
    return a / b if b != 0 and np.isfinite(b) else float("nan")


def scores_from_stats(s: Mapping[str, float], threshold: float) -> dict[str, float]:
    """rmse, mae, rb, cc, r2, kge and pod, far, csi (at ``threshold``) from statistics."""
    n = s["n"]
    if n == 0:
        return {
            m: float("nan") for m in ("rmse", "mae", "rb", "cc", "r2", "kge", "pod", "far", "csi")
        }
    mp, mo = s["sp"] / n, s["so"] / n
    vp = max(s["spp"] / n - mp * mp, 0.0)
    vo = max(s["soo"] / n - mo * mo, 0.0)
    cov = s["spo"] / n - mp * mo
    sse = s["spp"] - 2 * s["spo"] + s["soo"]
    cc = _div(cov, np.sqrt(vp * vo))
    beta = _div(mp, mo)
    gamma = _div(_div(np.sqrt(vp), mp), _div(np.sqrt(vo), mo))
    kge = 1 - np.sqrt((cc - 1) ** 2 + (beta - 1) ** 2 + (gamma - 1) ** 2)
    k = _thr_key(threshold)
    h, m, f = s[f"hits@{k}"], s[f"misses@{k}"], s[f"false@{k}"]
    return {
        "rmse": float(np.sqrt(max(sse, 0.0) / n)),
        "mae": s["sae"] / n,
        "rb": _div(s["sp"] - s["so"], s["so"]) * 100.0,
        "cc": float(cc),
        "r2": 1 - _div(sse, vo * n),
        "kge": float(kge),
        "pod": _div(h, h + m),
        "far": _div(f, h + f),
        "csi": _div(h, h + m + f),
    }


def subset_name(threshold: float, default: float) -> str:
    """Subset label of threshold-dependent scores: ``all`` at the default threshold."""
    return "all" if threshold == default else f"threshold_{_thr_key(threshold)}mm"


def score_rows(
    model: str,
    scheme: str,
    stats: Mapping[str, float],
    *,
    thresholds: Sequence[float] = (0.1, 1.0),
    subset: str = "all",
) -> list[dict]:
    """Tidy ``scores.csv`` rows of one model x scheme x subset from its statistics.

    Continuous scores are reported once under ``subset``; categorical ones at every
    threshold, under ``subset`` for the first (default) threshold and
    ``<subset>_threshold_<t>mm`` / ``threshold_<t>mm`` for the others.
    """
    rows = []
    n = int(stats["n"])
    for i, t in enumerate(thresholds):
        sc = scores_from_stats(stats, t)
        if i == 0:
            for m in ("rmse", "mae", "rb", "cc", "r2", "kge"):
                rows.append(
                    dict(model=model, scheme=scheme, subset=subset, metric=m, value=sc[m], n=n)
                )
        name = subset_name(t, thresholds[0])
        sub = subset if name == "all" else (name if subset == "all" else f"{subset}_{name}")
        for m in ("pod", "far", "csi"):
            rows.append(dict(model=model, scheme=scheme, subset=sub, metric=m, value=sc[m], n=n))
    return rows


def stats_frame(entries: Iterable[tuple[str, str, str, Mapping[str, float]]]) -> pd.DataFrame:
    """Statistics as a table ``model, scheme, subset, <stats...>`` (for partial results)."""
    return pd.DataFrame(
        [{"model": m, "scheme": sc, "subset": su, **st} for m, sc, su, st in entries]
    )


def rows_from_stats_frame(df: pd.DataFrame, thresholds: Sequence[float]) -> list[dict]:
    """Sum partial statistics per ``model, scheme, subset`` and turn them into score rows."""
    rows: list[dict] = []
    if df.empty:
        return rows
    cols = [c for c in df.columns if c not in ("model", "scheme", "subset")]
    for (model, scheme, subset), g in df.groupby(["model", "scheme", "subset"], sort=False):
        stats = {c: float(g[c].sum()) for c in cols}
        rows += score_rows(model, scheme, stats, thresholds=thresholds, subset=subset)
    return rows


__all__ += ["stats_frame", "rows_from_stats_frame"]


# --------------------------------------------------------------------------- stations
def day_set_keys(times, year_sets: Mapping[int, Sequence[str]]) -> np.ndarray:
    """Availability-set key (``'-'``-joined sources) of every day, from ``{year: sources}``."""
    years = pd.DatetimeIndex(times).year
    missing = sorted(set(years) - set(int(y) for y in year_sets))
    if missing:
        raise ValueError(f"no source-availability set given for years {missing}")
    keys = {int(y): "-".join(s) for y, s in year_sets.items()}
    return np.array([keys[int(y)] for y in years], dtype=object)


def fit_baseline(
    name: str,
    centre: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    fit_stations: np.ndarray,
    srcs: Sequence[str],
    *,
    static: Sequence[str] = ("elevation", "lat", "lon"),
    seed: int = 0,
    threads: int = 1,
    params: Mapping[str, Mapping] | None = None,
):
    """Fit one baseline on the fit stations' days where all of ``srcs`` and y are finite.

    Returns the fitted model and the channel names of its input columns (the sources, then
    for tabular models the static channels present).
    """
    from .models.precip_baselines import LINEAR

    channels = list(channels)
    cols = list(srcs) if name in LINEAR else list(srcs) + [c for c in static if c in channels]
    X = centre[fit_stations][..., [channels.index(c) for c in cols]].reshape(-1, len(cols))
    t = y[fit_stations].ravel()
    ok = np.isfinite(t) & np.all(np.isfinite(X[:, : len(srcs)]), axis=1)
    model = registry.make(
        "precip", name, seed=seed, threads=threads, params=params, n_sources=len(srcs)
    )
    model.fit(X[ok], t[ok])
    return model, cols


def baseline_predictions(
    centre: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    day_keys: np.ndarray,
    fit_stations: np.ndarray,
    names: Sequence[str],
    **kw,
) -> dict[str, np.ndarray]:
    """Predictions ``(station, time)`` of linear/tabular baselines, one fit per availability set.

    ``centre`` is ``(station, time, channel)`` (the station-cell values).  For each set the
    baseline is fitted by :func:`fit_baseline` on ``fit_stations`` only and predicts every
    station on the days of that set.  ``kw`` go to :func:`fit_baseline`.
    """
    channels = list(channels)
    out = {n: np.full(y.shape, np.nan, dtype="f4") for n in names}
    for key in pd.unique(day_keys):
        days = np.flatnonzero(day_keys == key)
        for name in names:
            model, cols = fit_baseline(
                name, centre, y, channels, fit_stations, key.split("-"), **kw
            )
            X = centre[:, days][..., [channels.index(c) for c in cols]]
            out[name][:, days] = model.predict(X.reshape(-1, len(cols))).reshape(X.shape[:2])
    return out


def deep_predictions(
    x: np.ndarray,
    channels: Sequence[str],
    day_keys: np.ndarray,
    models: Mapping[str, object],
    *,
    device: str = "auto",
) -> np.ndarray:
    """``(station, time)`` predictions of one network, the model of each day's set."""
    from .models.train import predict_stations

    out = np.full(x.shape[:2], np.nan, dtype="f4")
    for key in pd.unique(day_keys):
        if key not in models:
            raise ValueError(f"no trained model for source set {key!r} (have {sorted(models)})")
        days = np.flatnonzero(day_keys == key)
        pred = predict_stations(models[key], x, channels, device=device)
        out[:, days] = pred[:, days]
    return out


GAUGE_ONLY = registry.names("precip", "gauge-only")  # ("idw", "ok")


def gauge_predictions(
    y: np.ndarray,
    geo: Mapping[str, np.ndarray],
    fit_stations: np.ndarray,
    targets: np.ndarray,
    names: Sequence[str] = GAUGE_ONLY,
    *,
    min_gauges: int = 3,
) -> dict[str, np.ndarray]:
    """Gauge-only predictions ``(station, time)`` at the ``targets``' cell centres.

    Each of ``idw`` (power by leave-one-gauge-out CV) and ``ok`` (ordinary kriging,
    climatological variogram) is fitted on the ``fit_stations`` only and interpolates their
    daily values (:class:`gridfuse.gauges.GaugeInterpolator`); clipped at 0, NaN on days with
    fewer than ``min_gauges`` reporting gauges.
    """
    fit = np.asarray(fit_stations, int)
    targets = np.asarray(targets, int)
    out = {}
    for name in names:
        gi = registry.make("precip", name, min_gauges=min_gauges)
        gi.fit(geo["lat"][fit], geo["lon"][fit], y[fit].T)
        p = np.full(y.shape, np.nan, dtype="f4")
        p[targets] = gi.predict(
            geo["lat"][fit],
            geo["lon"][fit],
            y[fit].T,
            geo["centre_lat"][targets],
            geo["centre_lon"][targets],
        ).T
        out[name] = np.maximum(p, 0.0)
    return out


def _stats_entries(scheme, preds, obs, stations, thresholds):
    entries = []
    for name, p in preds.items():
        st = sufficient_stats(obs[stations], p[stations], thresholds)
        entries.append((name, scheme, "all", st))
        logger.info(
            "%s %s: n=%d rmse=%.3f",
            scheme,
            name,
            st["n"],
            scores_from_stats(st, thresholds[0])["rmse"],
        )
    return entries


def evaluate_stations(
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    roles: np.ndarray,
    day_keys: np.ndarray,
    *,
    sources: Sequence[str],
    deep_models: Mapping[str, Mapping[str, object]],
    baselines: Sequence[str] = ("oora", "owa", "ievw", "rf", "lightgbm", "mlp"),
    schemes: Sequence[str] = ("holdout",),
    truth: np.ndarray | None = None,
    thresholds: Sequence[float] = (0.1, 1.0),
    seed: int = 0,
    threads: int = 1,
    params: Mapping[str, Mapping] | None = None,
    device: str = "auto",
    geo: Mapping[str, np.ndarray] | None = None,
    product: np.ndarray | None = None,
    min_gauges: int = 3,
) -> pd.DataFrame:
    """Statistics of every model at the evaluation stations (a :func:`stats_frame`).

    Schemes: ``holdout`` (models fitted on the ``train`` stations scored at the
    ``evaluation`` stations against their gauges) and ``osse_stations`` (the same
    predictions against the truth at the evaluation stations' cells; needs ``truth
    (station, time)``).  Raw sources are models named by their key; ``idw``/``ok`` in
    ``baselines`` are the gauge-only interpolations (need ``geo``); ``product (station,
    time)``, when given, is scored as model ``product`` (the values of the product files).
    ``site_cv`` is :func:`site_cv_fold`, one call per fold.

    Parameters
    ----------
    x : ndarray ``(station, time, py, px, channel)``
    y : ndarray ``(station, time)``
    roles : ndarray of str, per station (``train`` / ``evaluation``)
    day_keys : ndarray of availability-set keys per day (:func:`day_set_keys`)
    deep_models : ``{net: {set_key: FusionModel}}`` trained on the train stations
    """
    channels = list(channels)
    roles = np.asarray(roles).astype(str)
    c = x.shape[2] // 2
    centre = x[:, :, c, c, :]
    train_idx = np.flatnonzero(roles == "train")
    eval_idx = np.flatnonzero(roles == "evaluation")
    entries = []
    if not {"holdout", "osse_stations"} & set(schemes):
        return stats_frame(entries)
    preds = {s: centre[..., channels.index(s)] for s in sources}
    tab = [b for b in baselines if b not in GAUGE_ONLY]
    preds.update(
        baseline_predictions(
            centre,
            y,
            channels,
            day_keys,
            train_idx,
            tab,
            seed=seed,
            threads=threads,
            params=params,
        )
    )
    gauge_only = [b for b in baselines if b in GAUGE_ONLY]
    if gauge_only:
        if geo is None:
            raise ValueError(f"gauge-only baselines {gauge_only} need the station coordinates")
        preds.update(
            gauge_predictions(y, geo, train_idx, eval_idx, gauge_only, min_gauges=min_gauges)
        )
    for net, models in deep_models.items():
        preds[net] = deep_predictions(x, channels, day_keys, models, device=device)
    if product is not None:
        preds["product"] = product
    if "holdout" in schemes:
        entries += _stats_entries("holdout", preds, y, eval_idx, thresholds)
    if "osse_stations" in schemes:
        if truth is None:
            raise ValueError("osse_stations needs the truth at the stations")
        entries += _stats_entries("osse_stations", preds, truth, eval_idx, thresholds)
    return stats_frame(entries)


def site_cv_split(
    roles: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(fit, test)`` station indices of the site_cv folds over the training stations."""
    from .cv import SiteKFold

    train_idx = np.flatnonzero(np.asarray(roles).astype(str) == "train")
    splitter = SiteKFold(min(n_splits, train_idx.size), seed)
    return [(train_idx[f], train_idx[t]) for f, t in splitter.split(train_idx, groups=train_idx)]


def site_cv_fold(
    fold: int,
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    roles: np.ndarray,
    day_keys: np.ndarray,
    *,
    sources: Sequence[str],
    geo: Mapping[str, np.ndarray],
    baselines: Sequence[str] = (),
    refit: Mapping[str, Mapping] | None = None,
    product: bool = False,
    n_splits: int = 5,
    thresholds: Sequence[float] = (0.1, 1.0),
    seed: int = 0,
    threads: int = 1,
    params: Mapping[str, Mapping] | None = None,
    device: str = "auto",
    min_gauges: int = 3,
) -> pd.DataFrame:
    """Statistics of one site_cv fold at its test stations (sum the folds for the scores).

    Every model is refitted on the fold's fit stations only: the baselines, the gauge-only
    interpolations, the networks in ``refit`` (``{net: {"sizes", "train", "val_fraction"}}``,
    ``mpfm_g`` = MPFM with gauge channels), each as cross-fitted members, and with
    ``product`` the product itself: its variant chosen by inner site CV within the fold
    (:func:`gridfuse.gauge_fusion.build_product`; needs ``mpfm`` and ``mpfm_g`` in ``refit``)
    and made at the test stations from the fold's fit gauges only.
    """
    from .gauge_fusion import build_product, product_at_stations, train_precip_network

    channels = list(channels)
    fit, test = site_cv_split(roles, n_splits, seed)[fold]
    logger.info("site_cv fold %d: %d fit stations, %d test stations", fold, fit.size, test.size)
    c = x.shape[2] // 2
    centre = x[:, :, c, c, :]
    preds = {s: centre[..., channels.index(s)] for s in sources}
    tab = [b for b in baselines if b not in GAUGE_ONLY]
    preds.update(
        baseline_predictions(
            centre, y, channels, day_keys, fit, tab, seed=seed, threads=threads, params=params
        )
    )
    gauge_only = [b for b in baselines if b in GAUGE_ONLY]
    preds.update(gauge_predictions(y, geo, fit, test, gauge_only, min_gauges=min_gauges))
    refit = dict(refit or {})
    if product and not {"mpfm", "mpfm_g"} <= set(refit):
        raise ValueError("the product in site_cv needs mpfm and mpfm_g refitted per fold")
    nets = {n: {} for n in refit}
    for key in pd.unique(day_keys):
        srcs = key.split("-")
        chans = srcs + [s for s in channels if s not in sources]
        sel = [channels.index(ch) for ch in chans]
        for net, spec in refit.items():
            nets[net][key], _ = train_precip_network(
                net,
                x[..., sel],
                y,
                chans,
                srcs,
                fit,
                geo,
                sizes=spec.get("sizes"),
                train_cfg=spec["train"],
                val_fraction=spec.get("val_fraction", 0.2),
                min_gauges=min_gauges,
                split_seed=seed + fold,
            )
    for net in refit:
        if net == "mpfm_g":
            continue
        preds[net] = deep_predictions(x[test], channels, day_keys, nets[net], device=device)
        full = np.full(y.shape, np.nan, "f4")
        full[test] = preds[net]
        preds[net] = full
    if product:
        prod = np.full(y.shape, np.nan, "f4")
        for key in pd.unique(day_keys):
            days = np.flatnonzero(day_keys == key)
            srcs = key.split("-")
            chans = srcs + [s for s in channels if s not in sources]
            sel = [channels.index(ch) for ch in chans]
            models = {n: nets[n][key] for n in ("mpfm", "mpfm_g")}
            xs = x[..., sel]
            spec = build_product(
                models,
                xs,
                y,
                chans,
                geo,
                fit,
                days,
                min_gauges=min_gauges,
                csi_threshold=thresholds[0],
                device=device,
            )
            logger.info("fold %d, set %s: product = %s + %s", fold, key, spec.net, spec.correction)
            p = product_at_stations(spec, models, xs, y, chans, geo, fit, test, device=device)
            prod[:, days] = p[:, days]
        preds["product"] = prod
    return stats_frame(_stats_entries("site_cv", preds, y, test, thresholds))


def evaluate_grid(
    truth: np.ndarray,
    fields: Mapping[str, np.ndarray],
    *,
    thresholds: Sequence[float] = (0.1, 1.0),
    scheme: str = "osse_grid",
    subset: str = "all",
) -> pd.DataFrame:
    """Statistics of gridded fields against the truth (every cell and day)."""
    entries = []
    for name, f in fields.items():
        if f.shape != truth.shape:
            raise ValueError(f"{name}: shape {f.shape} differs from the truth {truth.shape}")
        entries.append((name, scheme, subset, sufficient_stats(truth, f, thresholds)))
    return stats_frame(entries)


def baseline_grids(
    ps,
    stack: np.ndarray,
    sources: Sequence[str],
    days,
    grid,
    *,
    linear: Sequence[str] = (),
    gauge_only: Sequence[str] = (),
    min_gauges: int = 3,
) -> dict[str, np.ndarray]:
    """Gridded fields ``(day, nlat, nlon)`` of baselines fitted on the training stations.

    ``ps``: the :class:`gridfuse.samples.PatchSampler` of ``patches.nc`` (station-cell values,
    gauges, roles); ``stack``: the sources' fields ``(day, nlat, nlon, source)`` of ``days``
    in the order of ``sources``.  Each ``linear`` merge is fitted by :func:`fit_baseline` on
    the training stations' cell values and applied to every cell; each ``gauge_only``
    interpolation is fitted on the training gauges and interpolates their values of each
    day to every cell centre (clipped at 0).
    """
    c = ps.x.shape[2] // 2
    centre = ps.x[:, :, c, c, :]
    fit = np.flatnonzero(ps.roles == "train")
    out = {}
    for name in linear:
        model, _ = fit_baseline(name, centre, ps.y, ps.channels, fit, sources)
        out[name] = np.stack([model.predict(day) for day in stack]).astype("f4")
    lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    pos = ps.times.get_indexer(pd.DatetimeIndex(days))
    if gauge_only and (pos < 0).any():  # index -1 would silently read the last gauge day
        lost = pd.DatetimeIndex(days)[pos < 0]
        raise ValueError(
            f"gauge-only baselines: {len(lost)} day(s) not in the patches' times, first "
            f"{lost[0]:%Y-%m-%d} (patches cover {ps.times[0]:%Y-%m-%d}..{ps.times[-1]:%Y-%m-%d})"
        )
    lat, lon, y = ps.lat[fit], ps.lon[fit], ps.y[fit]
    for name in gauge_only:
        gi = registry.make("precip", name, min_gauges=min_gauges).fit(lat, lon, y.T)
        values = gi.predict(lat, lon, y[:, pos].T, lat2.ravel(), lon2.ravel())
        out[name] = np.maximum(values, 0.0).reshape((len(pos),) + grid.shape)
    return out


__all__ += [
    "baseline_grids",
    "GAUGE_ONLY",
    "gauge_predictions",
    "site_cv_split",
    "site_cv_fold",
    "day_set_keys",
    "baseline_predictions",
    "deep_predictions",
    "evaluate_stations",
    "evaluate_grid",
]
