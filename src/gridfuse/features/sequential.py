"""Sequential multi-pollutant input (Method A, 3.1.4; Spec A.7).

A previously estimated pollutant (e.g. PM2.5) becomes a feature of the next one (SO2). At
station rows the feature must not carry information the model of the first pollutant got
from those very rows, so training rows get **out-of-fold** predictions: the first
pollutant's model is refitted K times, each time without one fold (grouped by station), and
each row receives the prediction of the model that did not see it. At prediction time the
feature is the first pollutant's gridded product, which was made without the second one's
observations, so the two uses agree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..cv import SiteKFold

logger = logging.getLogger(__name__)

__all__ = ["SEQUENTIAL_COLUMN", "out_of_fold"]

#: Column name of the sequential input in the feature table.
SEQUENTIAL_COLUMN = "prev_pollutant"


def out_of_fold(
    fit_predict: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_splits: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions of ``y`` from ``X``, folds grouped by ``groups`` (stations).

    Parameters
    ----------
    fit_predict : callable ``(X_train, y_train, X_test) -> y_pred``
        Fits a fresh model and predicts; it only ever sees the training part of a fold.
    X, y, groups : arrays with one entry per row
        Rows with NaN ``y`` are never used for fitting; they receive predictions too.
    n_splits, seed : int
        Station-grouped folds (:class:`gridfuse.cv.SiteKFold`).

    Returns
    -------
    ndarray (n,) float32: for every row, the prediction of the model fitted without its fold.
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    if not (len(X) == len(y) == len(groups)):
        raise ValueError(
            f"out_of_fold: X, y, groups lengths differ ({len(X)}, {len(y)}, {len(groups)})"
        )
    out = np.full(len(y), np.nan, dtype=np.float32)
    for k, (tr, te) in enumerate(SiteKFold(n_splits, seed).split(X, y, groups)):
        tr = tr[np.isfinite(y[tr])]
        out[te] = np.asarray(fit_predict(X[tr], y[tr], X[te]), dtype=np.float32)
        logger.debug("out-of-fold %d: %d training rows, %d predicted", k, len(tr), len(te))
    return out
