"""SHAP explanation of tree models with LightGBM's exact TreeSHAP (``pred_contrib``).

:func:`tree_shap` returns per-row feature contributions (the last column is the expected
value), :func:`mean_abs_shap` the global importance table, with each feature's group (the
technique it belongs to) so the share of e.g. the convolved features can be read off, and
:func:`plot_beeswarm` / :func:`plot_bar` the usual figures (drawn with matplotlib).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["tree_shap", "feature_group", "mean_abs_shap", "plot_beeswarm", "plot_bar"]


def tree_shap(booster, X: np.ndarray, threads: int = 1) -> np.ndarray:
    """Exact TreeSHAP values of a LightGBM booster: ``(n, n_features + 1)``.

    Rows sum to the raw prediction; the last column is the expected value.
    """
    contrib = np.asarray(booster.predict(X, pred_contrib=True, num_threads=threads))
    if contrib.shape != (X.shape[0], X.shape[1] + 1):
        raise ValueError(
            f"pred_contrib returned {contrib.shape}; expected {(X.shape[0], X.shape[1] + 1)}"
        )
    return contrib


def feature_group(name: str) -> str:
    """Technique / family of a feature column of the SO2 model."""
    if name.startswith("conv"):
        return "convolution"
    if name == "rid":
        return "random_id"
    if name == "prev_pollutant":
        return "sequential"
    for tag in ("_m", "_up"):  # neighbourhood means (<field>_m5) and upwind samples (<layer>_up6)
        if tag in name and name.rsplit(tag, 1)[1].isdigit():
            return "spatial"
    if name in ("doy", "year", "wond"):
        return "calendar"
    if name in ("lon_n", "lat_n"):
        return "location"
    return "input"


def mean_abs_shap(contrib: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """Mean |SHAP| per feature, sorted descending: ``feature, group, mean_abs_shap, share``.

    ``share`` is the feature's fraction of the total mean |SHAP|.
    """
    columns = list(columns)
    vals = np.abs(np.asarray(contrib)[:, : len(columns)]).mean(axis=0)
    df = pd.DataFrame(
        {"feature": columns, "group": [feature_group(c) for c in columns], "mean_abs_shap": vals}
    )
    total = vals.sum()
    df["share"] = vals / total if total > 0 else np.nan
    return df.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def _save(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def plot_bar(table: pd.DataFrame, path: str | os.PathLike, top: int = 20) -> Path:
    """Horizontal bar chart of the ``top`` features by mean |SHAP|, coloured by group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.head(top).iloc[::-1]
    groups = sorted(table["group"].unique())
    cmap = plt.get_cmap("tab10")
    color = {g: cmap(i % 10) for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(t) + 1.2))
    ax.barh(t["feature"], t["mean_abs_shap"], color=[color[g] for g in t["group"]])
    for g in groups:
        ax.bar(0, 0, color=color[g], label=g)
    ax.set_xlabel("mean |SHAP| (ug/m3)")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def plot_beeswarm(
    contrib: np.ndarray,
    X: np.ndarray,
    columns: Sequence[str],
    path: str | os.PathLike,
    top: int = 20,
    seed: int = 0,
) -> Path:
    """Beeswarm-style summary: SHAP value per row for the ``top`` features, coloured by the
    feature's value (rank-normalized within the feature), rows jittered vertically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(columns)
    order = np.argsort(-np.abs(contrib[:, : len(columns)]).mean(axis=0))[:top][::-1]
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.2))
    for pos, j in enumerate(order):
        v = X[:, j].astype(np.float64)
        ok = np.isfinite(v)
        c = np.full(len(v), 0.5)
        if ok.sum() > 1:
            c[ok] = pd.Series(v[ok]).rank(pct=True).to_numpy()
        y = pos + rng.uniform(-0.3, 0.3, len(v))
        sc = ax.scatter(contrib[:, j], y, c=c, cmap="coolwarm", s=4, vmin=0, vmax=1, linewidths=0)
    ax.set_yticks(range(len(order)), [columns[j] for j in order])
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlabel("SHAP value (ug/m3)")
    fig.colorbar(sc, ax=ax, label="feature value (rank)")
    return _save(fig, path)
