"""Precipitation baselines: linear merges (OORA, OWA, IEVW) and tabular regressors.

Every baseline is fitted on training-station samples only (``fit(X, y)`` with ``X`` the
sources' values at the station cell, one column per source) and predicts from the same
columns, so the linear merges apply unchanged to whole grids (``X`` shaped ``(..., k)``).
Predictions are clipped at zero (mm/day).  Made by :func:`gridfuse.models.registry.make`
(kind ``precip``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

logger = logging.getLogger(__name__)

__all__ = [
    "oora",
    "OORA",
    "OWA",
    "IEVW",
    "TabularRegressor",
    "LINEAR",
    "TABULAR",
]

LINEAR = ("oora", "owa", "ievw")


def _complete(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype="f8")
    y = np.asarray(y, dtype="f8")
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, sources) matching y (n,); got {X.shape} and {y.shape}")
    ok = np.isfinite(y) & np.all(np.isfinite(X), axis=1)
    if not ok.any():
        raise ValueError("no complete training samples (every row has a NaN source or target)")
    return X[ok], y[ok]


def oora(X: np.ndarray) -> np.ndarray:
    """One-outlier-removed average over the last axis.

    Per pixel-day, drops the source farthest from the mean of the available sources and
    averages the rest (with two or fewer available sources: their mean).  NaN sources are
    ignored; all-NaN gives NaN.
    """
    X = np.asarray(X, dtype="f8")
    n = np.sum(np.isfinite(X), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(X, axis=-1)
        mean = total / n
        dev = np.abs(X - mean[..., None])
        dev = np.where(np.isfinite(dev), dev, -1.0)
        worst = np.take_along_axis(X, np.argmax(dev, axis=-1)[..., None], axis=-1)[..., 0]
        out = np.where(n > 2, (total - worst) / (n - 1), mean)
    return np.where(n > 0, np.maximum(out, 0.0), np.nan)


class OORA:
    """:func:`oora` with the fit/predict interface (nothing to fit)."""

    name = "oora"

    def fit(self, X, y):  # noqa: ARG002 - same interface as the fitted baselines
        return self

    def predict(self, X) -> np.ndarray:
        return oora(X)


class _Weighted:
    weights_: np.ndarray

    def predict(self, X) -> np.ndarray:
        """Weighted sum over the last axis; a NaN source makes the result NaN."""
        X = np.asarray(X, dtype="f8")
        if X.shape[-1] != self.weights_.size:
            raise ValueError(
                f"expected {self.weights_.size} sources on the last axis, got {X.shape}"
            )
        return np.maximum(X @ self.weights_, 0.0)


class OWA(_Weighted):
    """Optimized weighted average: non-negative weights summing to 1, least squares fit."""

    name = "owa"

    def fit(self, X, y) -> OWA:
        X, y = _complete(X, y)
        k = X.shape[1]
        scale = max(float(np.mean(y**2)), 1e-12)

        def loss(w):
            r = X @ w - y
            return float(r @ r) / (len(y) * scale)

        def grad(w):
            return 2.0 * X.T @ (X @ w - y) / (len(y) * scale)

        res = minimize(
            loss,
            np.full(k, 1.0 / k),
            jac=grad,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * k,
            constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        w = np.clip(res.x, 0.0, None)
        self.weights_ = w / w.sum()
        logger.info("OWA weights %s (%s)", np.round(self.weights_, 4).tolist(), res.message)
        return self


class IEVW(_Weighted):
    """Inverse error-variance weighting: ``w_i ~ 1 / var(P_i - O)``, normalized to sum to 1."""

    name = "ievw"

    def fit(self, X, y) -> IEVW:
        X, y = _complete(X, y)
        var = np.var(X - y[:, None], axis=0)
        inv = 1.0 / np.maximum(var, 1e-12)
        self.weights_ = inv / inv.sum()
        self.error_var_ = var
        logger.info("IEVW weights %s", np.round(self.weights_, 4).tolist())
        return self


def _random_forest(p: dict, seed: int, threads: int):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(
        n_estimators=p.get("n_estimators", 100),
        min_samples_leaf=p.get("min_samples_leaf", 5),
        n_jobs=threads,
        random_state=seed,
    )


def _lightgbm(p: dict, seed: int, threads: int):
    import lightgbm as lgb

    return lgb.LGBMRegressor(
        n_estimators=p.get("n_estimators", 300),
        learning_rate=p.get("learning_rate", 0.05),
        num_leaves=p.get("num_leaves", 31),
        min_child_samples=p.get("min_child_samples", 20),
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.9,
        random_state=seed,
        n_jobs=threads,
        verbose=-1,
        # the same fit with any thread timing: LightGBM otherwise picks row- or column-wise
        # histograms by timing a trial, and the two sum in different orders
        deterministic=True,
        force_row_wise=True,
    )


def _mlp(p: dict, seed: int, threads: int):  # noqa: ARG001 - scikit-learn's MLP is serial
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        MLPRegressor(
            hidden_layer_sizes=tuple(p.get("hidden", (64, 32))),
            alpha=p.get("alpha", 1e-3),
            max_iter=p.get("max_iter", 300),
            early_stopping=True,
            random_state=seed,
        ),
    )


#: tabular model -> ``builder(params, seed, threads)`` of its scikit-learn style regressor
_TABULAR_BUILDERS = {"rf": _random_forest, "lightgbm": _lightgbm, "mlp": _mlp}
TABULAR = tuple(_TABULAR_BUILDERS)


class TabularRegressor:
    """Random forest, LightGBM or MLP on station-pixel values (+ static columns).

    NaN inputs are filled with the training column means for RF and MLP (LightGBM handles
    them itself); the MLP sees ``log1p`` of the precipitation columns, standardized.
    """

    def __init__(
        self,
        kind: str,
        *,
        log_columns: Sequence[int] = (),
        seed: int = 0,
        threads: int = 1,
        params: dict | None = None,
    ):
        if kind not in TABULAR:
            raise ValueError(f"unknown tabular baseline {kind!r}; known: {TABULAR}")
        self.name = kind
        self.kind = kind
        self.log_columns = list(log_columns)
        self.seed = seed
        self.threads = threads
        self.params = dict(params or {})

    def _features(self, X) -> np.ndarray:
        X = np.array(X, dtype="f8")
        if self.log_columns:
            X[:, self.log_columns] = np.log1p(np.maximum(X[:, self.log_columns], 0.0))
        if self.kind != "lightgbm":
            X = np.where(np.isfinite(X), X, self.fill_)
        return X

    def fit(self, X, y) -> TabularRegressor:
        X = np.asarray(X, dtype="f8")
        y = np.asarray(y, dtype="f8")
        ok = np.isfinite(y)
        Xl = np.array(X[ok])
        if self.log_columns:
            Xl[:, self.log_columns] = np.log1p(np.maximum(Xl[:, self.log_columns], 0.0))
        self.fill_ = np.nan_to_num(np.nanmean(Xl, axis=0))
        F, t = self._features(X[ok]), y[ok]
        self.model_ = _TABULAR_BUILDERS[self.kind](self.params, self.seed, self.threads)
        self.model_.fit(F, t)
        logger.info("%s fitted on %d samples x %d features", self.kind, *F.shape)
        return self

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype="f8")
        out = np.full(X.shape[0], np.nan)
        ok = np.any(np.isfinite(X), axis=1)
        if ok.any():
            out[ok] = np.maximum(self.model_.predict(self._features(X[ok])), 0.0)
        return out
