"""Verification metrics: numpy kernels, thin xarray / pandas wrappers, tidy score rows.

Every kernel takes ``obs`` and ``pred`` arrays of the same shape and reduces along ``axis``
(``None``: over all elements).  A pair is used only when both values are finite: pairs
where either side is NaN are dropped, element by element, before any sum.  A reduction with
no valid pair (or a degenerate denominator, e.g. a constant observation series for ``cc``)
returns NaN rather than raising.

Definitions (P = prediction, O = observation, sums over valid pairs):

- ``rmse`` = sqrt(mean((P - O)^2)), ``mae`` = mean(|P - O|)
- ``rb`` (relative bias, %) = sum(P - O) / sum(O) x 100
- ``cc`` = Pearson correlation coefficient
- ``r2`` = coefficient of determination 1 - SSE / SST, SST = sum((O - mean(O))^2); it is not
  ``cc**2``: a biased prediction scores lower, and it can be negative
- ``kge`` = Kling-Gupta efficiency, Kling et al. (2012) form
  1 - sqrt((r - 1)^2 + (beta - 1)^2 + (gamma - 1)^2) with beta = mean(P) / mean(O) and
  gamma = CV(P) / CV(O), CV = std / mean (population std)
- ``pod``, ``far``, ``csi``: from the 2 x 2 contingency table at ``threshold``; a value is an
  event ("rain") when it is **greater than or equal to** the threshold.  With H hits,
  M misses and F false alarms: POD = H / (H + M), FAR = F / (H + F), CSI = H / (H + M + F).

The tidy row helper :func:`score_rows` produces the ``scores.csv`` contract rows
``model, scheme, subset, metric, value, n`` (see ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

logger = logging.getLogger(__name__)

__all__ = [
    "CONTINUOUS",
    "CATEGORICAL",
    "METRICS",
    "SCORE_COLUMNS",
    "DEFAULT_THRESHOLD",
    "rmse",
    "mae",
    "rb",
    "cc",
    "r2",
    "kge",
    "contingency",
    "pod",
    "far",
    "csi",
    "n_valid",
    "compute",
    "score",
    "score_rows",
    "score_frame",
    "xr_score",
]

CONTINUOUS = ("rmse", "mae", "rb", "cc", "r2", "kge")
CATEGORICAL = ("pod", "far", "csi")
METRICS = CONTINUOUS + CATEGORICAL
SCORE_COLUMNS = ["model", "scheme", "subset", "metric", "value", "n"]
#: Default event threshold (precipitation, mm/day): a day is wet when value >= 0.1.
DEFAULT_THRESHOLD = 0.1


def _pairs(obs, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float copies of obs/pred with NaN wherever either is missing, and the valid mask."""
    o = np.asarray(obs, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if o.shape != p.shape:
        raise ValueError(f"obs and pred must have the same shape; found {o.shape} and {p.shape}")
    ok = np.isfinite(o) & np.isfinite(p)
    return np.where(ok, o, np.nan), np.where(ok, p, np.nan), ok


def _div(num, den):
    """num / den with NaN where den == 0 (no warnings)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    return out[()] if out.ndim == 0 else out


def _mean(x, ok, axis):
    return _div(np.nansum(x, axis=axis), ok.sum(axis=axis))


def n_valid(obs, pred, axis=None):
    """Number of pairs where both values are finite."""
    return _pairs(obs, pred)[2].sum(axis=axis)


def rmse(obs, pred, axis=None):
    """Root mean square error."""
    o, p, ok = _pairs(obs, pred)
    return np.sqrt(_mean((p - o) ** 2, ok, axis))


def mae(obs, pred, axis=None):
    """Mean absolute error."""
    o, p, ok = _pairs(obs, pred)
    return _mean(np.abs(p - o), ok, axis)


def rb(obs, pred, axis=None):
    """Relative bias in percent: sum(P - O) / sum(O) x 100."""
    o, p, _ = _pairs(obs, pred)
    return _div(np.nansum(p - o, axis=axis), np.nansum(o, axis=axis)) * 100.0


def _moments(obs, pred, axis):
    o, p, ok = _pairs(obs, pred)
    mo = _mean(o, ok, axis)
    mp = _mean(p, ok, axis)
    ao = o - (np.expand_dims(mo, axis) if axis is not None else mo)
    ap = p - (np.expand_dims(mp, axis) if axis is not None else mp)
    so = np.sqrt(_mean(ao**2, ok, axis))
    sp = np.sqrt(_mean(ap**2, ok, axis))
    cov = _mean(ao * ap, ok, axis)
    return o, p, ok, mo, mp, so, sp, cov


def cc(obs, pred, axis=None):
    """Pearson correlation coefficient (NaN when either series is constant)."""
    *_, so, sp, cov = _moments(obs, pred, axis)
    return _div(cov, so * sp)


def r2(obs, pred, axis=None):
    """Coefficient of determination 1 - SSE / SST (NaN when the observations are constant)."""
    o, p, _, mo, *_ = _moments(obs, pred, axis)
    mo_b = np.expand_dims(mo, axis) if axis is not None else mo
    sse = np.nansum((p - o) ** 2, axis=axis)
    sst = np.nansum((o - mo_b) ** 2, axis=axis)
    return 1.0 - _div(sse, sst)


def kge(obs, pred, axis=None):
    """Kling-Gupta efficiency, Kling et al. (2012): CV ratio as the variability term."""
    _, _, _, mo, mp, so, sp, cov = _moments(obs, pred, axis)
    r = _div(cov, so * sp)
    beta = _div(mp, mo)
    gamma = _div(_div(sp, mp), _div(so, mo))
    return 1.0 - np.sqrt((r - 1.0) ** 2 + (beta - 1.0) ** 2 + (gamma - 1.0) ** 2)


def contingency(obs, pred, threshold: float = DEFAULT_THRESHOLD, axis=None) -> dict:
    """2 x 2 contingency counts at ``threshold`` (event: value >= threshold).

    Returns
    -------
    dict
        ``hits``, ``misses``, ``false_alarms``, ``correct_negatives`` (integer counts over
        valid pairs).
    """
    o, p, ok = _pairs(obs, pred)
    with np.errstate(invalid="ignore"):
        eo = (o >= threshold) & ok
        ep = (p >= threshold) & ok
    return {
        "hits": (eo & ep).sum(axis=axis),
        "misses": (eo & ~ep).sum(axis=axis),
        "false_alarms": (~eo & ep & ok).sum(axis=axis),
        "correct_negatives": (~eo & ~ep & ok).sum(axis=axis),
    }


def pod(obs, pred, threshold: float = DEFAULT_THRESHOLD, axis=None):
    """Probability of detection H / (H + M)."""
    t = contingency(obs, pred, threshold, axis)
    return _div(t["hits"], t["hits"] + t["misses"])


def far(obs, pred, threshold: float = DEFAULT_THRESHOLD, axis=None):
    """False alarm ratio F / (H + F)."""
    t = contingency(obs, pred, threshold, axis)
    return _div(t["false_alarms"], t["hits"] + t["false_alarms"])


def csi(obs, pred, threshold: float = DEFAULT_THRESHOLD, axis=None):
    """Critical success index H / (H + M + F)."""
    t = contingency(obs, pred, threshold, axis)
    return _div(t["hits"], t["hits"] + t["misses"] + t["false_alarms"])


_KERNELS: dict[str, Callable] = {
    "rmse": rmse,
    "mae": mae,
    "rb": rb,
    "cc": cc,
    "r2": r2,
    "kge": kge,
    "pod": pod,
    "far": far,
    "csi": csi,
}


def compute(
    metric: str, obs, pred, *, threshold: float = DEFAULT_THRESHOLD, axis=None
) -> np.ndarray | float:
    """Evaluate one metric by its (lower-case) name."""
    try:
        fn = _KERNELS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}") from None
    if metric in CATEGORICAL:
        return fn(obs, pred, threshold=threshold, axis=axis)
    return fn(obs, pred, axis=axis)


def score(
    obs, pred, metrics: Sequence[str] = METRICS, *, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """All requested metrics over every valid pair, as ``{metric: value}``."""
    return {m: float(compute(m, obs, pred, threshold=threshold)) for m in metrics}


def score_rows(
    model: str,
    scheme: str,
    subset: str,
    obs,
    pred,
    metrics: Sequence[str] = METRICS,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[dict]:
    """Tidy rows ``model, scheme, subset, metric, value, n`` for ``scores.csv``.

    Parameters
    ----------
    model, scheme, subset : str
        Labels of the rows (see the scores.csv contract in ARCHITECTURE.md).
    obs, pred : array-like
        Paired values (any shape; flattened). NaN pairs are dropped.
    metrics : sequence of str
        Lower-case metric names from :data:`METRICS`.
    threshold : float
        Event threshold of ``pod``, ``far``, ``csi`` (event: value >= threshold).

    Returns
    -------
    list of dict
        One row per metric; ``n`` is the number of valid pairs.
    """
    o = np.ravel(np.asarray(obs, dtype=np.float64))
    p = np.ravel(np.asarray(pred, dtype=np.float64))
    n = int(n_valid(o, p))
    vals = score(o, p, metrics, threshold=threshold)
    return [
        {"model": model, "scheme": scheme, "subset": subset, "metric": m, "value": v, "n": n}
        for m, v in vals.items()
    ]


def score_frame(
    df: pd.DataFrame,
    *,
    obs: str = "obs",
    pred: str = "pred",
    by: Iterable[str] = ("model", "scheme", "subset"),
    metrics: Sequence[str] = METRICS,
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Score a long table of pairs, grouped by the label columns ``by``.

    Label columns among ``model, scheme, subset`` that are not in ``by`` are filled with
    ``"all"``, so the output always has the :data:`SCORE_COLUMNS` layout.
    """
    by = list(by)
    missing = [c for c in [obs, pred, *by] if c not in df.columns]
    if missing:
        raise KeyError(f"score_frame: columns {missing} not in the table ({list(df.columns)})")
    rows: list[dict] = []
    for key, g in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(by, key))
        lab = {c: str(labels.get(c, "all")) for c in ("model", "scheme", "subset")}
        rows += score_rows(
            lab["model"],
            lab["scheme"],
            lab["subset"],
            g[obs].to_numpy(),
            g[pred].to_numpy(),
            metrics,
            threshold,
        )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def xr_score(
    metric: str,
    obs: xr.DataArray,
    pred: xr.DataArray,
    dim: str | Sequence[str] | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> xr.DataArray:
    """A metric over dimension(s) ``dim`` of two aligned DataArrays (``None``: all dims).

    The arrays are aligned (inner join) and broadcast against each other first; dask-backed
    inputs are computed lazily block-wise when ``dim`` leaves other dimensions.
    """
    obs, pred = xr.align(obs, pred, join="inner")
    obs, pred = xr.broadcast(obs, pred)
    dims = list(obs.dims) if dim is None else ([dim] if isinstance(dim, str) else list(dim))
    for d in dims:
        if d not in obs.dims:
            raise ValueError(f"xr_score: dimension {d!r} not in {obs.dims}")

    def _kernel(o, p):
        # apply_ufunc moves the core dims to the end; flatten them into one axis
        k = len(dims)
        shape = o.shape[: o.ndim - k] + (-1,)
        return compute(metric, o.reshape(shape), p.reshape(shape), threshold=threshold, axis=-1)

    return xr.apply_ufunc(
        _kernel,
        obs,
        pred,
        input_core_dims=[dims, dims],
        dask="parallelized",
        output_dtypes=[np.float64],
    ).rename(metric)
