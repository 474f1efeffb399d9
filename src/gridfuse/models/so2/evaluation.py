"""Evaluation of the SO2 models: cross-validation in shared folds, scores, ablation of the
techniques, and the OSSE grid scores (the product and the baselines against the truth).

All stations are CV material: the SO2 record has no held-out evaluation stations, so the
``role`` column of stations.csv is not used here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ...cv import RegionHoldout
from ...features.table import TECHNIQUES, FeatureConfig, open_dynamic, tile_frame
from ...grid import Grid, tile_slices
from ...io import read_netcdf
from ...metrics import SCORE_COLUMNS, score_frame
from ..registry import make
from .estimator import ModelSettings, SO2Model

logger = logging.getLogger(__name__)

__all__ = [
    "observed",
    "fold_predictions",
    "cross_validate_fold",
    "cross_validate",
    "gather_scores",
    "ablation_variants",
    "ablation_variant_scores",
    "cv_plan",
    "ablation_plan",
    "ablation_table",
    "scheme_folds",
    "scheme_models",
    "scores_from_oof",
    "ablation",
    "with_coords",
    "so2_splitters",
    "osse_grid_scores",
    "OssePairs",
    "osse_baseline_scores",
    "open_osse_inputs",
]


def _splits(splitter, frame: pd.DataFrame) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    xy = pd.DataFrame({"lon": frame["lon"].to_numpy(), "lat": frame["lat"].to_numpy()})
    groups = frame["station"].to_numpy()
    if isinstance(splitter, RegionHoldout):
        yield from splitter.split_named(xy, None, groups)
        return
    for tr, te in splitter.split(xy, None, groups):
        yield "all", tr, te


def observed(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a station frame with an observed ``value`` (the CV material)."""
    return frame[np.isfinite(frame["value"].to_numpy(np.float64))].reset_index(drop=True)


def fold_predictions(
    frame: pd.DataFrame,
    models: Mapping[str, Callable[[], SO2Model]],
    scheme: str,
    fold: int,
    subset: str,
    train_index: np.ndarray,
    test_index: np.ndarray,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Out-of-fold predictions of every model in one fold (``frame``: observed rows)."""
    train, test = frame.iloc[train_index], frame.iloc[test_index]
    out = []
    for name, factory in models.items():
        m = factory().fit(train, history)
        pred = m.predict(test, history)
        out.append(
            pd.DataFrame(
                {
                    "model": name,
                    "scheme": scheme,
                    "fold": fold,
                    "subset": subset,
                    "station": test["station"].to_numpy(),
                    "date": test["date"].to_numpy(),
                    "obs": test["value"].to_numpy(np.float64),
                    "pred": np.asarray(pred, np.float64),
                }
            )
        )
    logger.info(
        "%s fold %d (%s): %d train / %d test rows, models %s",
        scheme,
        fold,
        subset,
        len(train_index),
        len(test_index),
        list(models),
    )
    return pd.concat(out, ignore_index=True)


def cross_validate_fold(
    frame: pd.DataFrame,
    models: Mapping[str, Callable[[], SO2Model]],
    scheme: str,
    splitter,
    fold: int | str,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Out-of-fold predictions of one fold of one scheme (one job of the workflow).

    ``fold`` is the fold number, or for the ``region`` scheme the region's name. The split
    is recomputed from the (seeded, deterministic) splitter, so the folds of separate jobs
    are the folds :func:`cross_validate` makes in one process.
    """
    frame = observed(frame)
    for k, (subset, tr, te) in enumerate(_splits(splitter, frame)):
        if str(fold) in (str(k), subset):
            return fold_predictions(frame, models, scheme, k, subset, tr, te, history)
    names = getattr(splitter, "names", None) or list(range(splitter.get_n_splits()))
    raise ValueError(f"{scheme}: no fold {fold!r}; the folds are {names}")


def cross_validate(
    frame: pd.DataFrame,
    models: Mapping[str, Callable[[], SO2Model]],
    splitters: Mapping[str, object],
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Out-of-fold predictions of every model under every scheme, in the same folds.

    Parameters
    ----------
    frame : station sample frame; rows without ``value`` are dropped. Needs ``lon``/``lat``
        (pixel centres) for spatial splitters; they are added from ``row``/``col`` by the
        caller (:func:`with_coords`).
    models : name -> factory of a fresh, unfitted :class:`SO2Model`.
    splitters : scheme name -> splitter (``gridfuse.cv``).
    history : all station-days (LSTM sequences).

    Returns
    -------
    DataFrame ``model, scheme, fold, subset, station, date, obs, pred``.
    """
    frame = observed(frame)
    out = [
        fold_predictions(frame, models, scheme, k, subset, tr, te, history)
        for scheme, splitter in splitters.items()
        for k, (subset, tr, te) in enumerate(_splits(splitter, frame))
    ]
    return pd.concat(out, ignore_index=True)


def scores_from_oof(oof: pd.DataFrame, metrics=("r2", "rmse", "mae", "rb", "cc")) -> pd.DataFrame:
    """scores.csv rows: ``subset=all`` over every out-of-fold row of a (model, scheme), plus
    one subset per held-out region for the ``region`` scheme."""
    allrows = score_frame(oof, by=["model", "scheme"], metrics=metrics)
    parts = [allrows]
    reg = oof[oof["subset"] != "all"]
    if len(reg):
        parts.append(score_frame(reg, by=["model", "scheme", "subset"], metrics=metrics))
    return pd.concat(parts, ignore_index=True)[SCORE_COLUMNS]


def gather_scores(oof: pd.DataFrame, grid_scores=()) -> pd.DataFrame:
    """scores.csv of the SO2 models: :func:`scores_from_oof` of the gathered out-of-fold
    predictions, then the ``osse_grid`` rows of each model (if any)."""
    parts = [scores_from_oof(oof), *[g[SCORE_COLUMNS] for g in grid_scores]]
    return pd.concat(parts, ignore_index=True)


def cv_plan(schemes, cv_cfg: Mapping, baselines) -> list[dict]:
    """The SO2 cross-validation jobs of a config, for pricing them without data.

    One entry per scheme x fold: ``scheme``, ``fold`` (label), ``models`` (refitted in the
    fold) and ``train_share``: the largest share of the observed station-days a model of the
    fold trains on (k-fold schemes: ``1 - 1/k``, balanced by rows; ``region``: 1, an upper
    bound, since a region's share depends on where the stations are).
    """
    out = []
    for scheme in schemes:
        folds = scheme_folds(scheme, cv_cfg)
        share = 1.0 if scheme == "region" else 1.0 - 1.0 / len(folds)
        for fold in folds:
            out.append(
                {
                    "scheme": scheme,
                    "fold": fold,
                    "models": scheme_models(scheme, cv_cfg, baselines),
                    "train_share": share,
                }
            )
    return out


def ablation_plan(features: FeatureConfig, cv_cfg: Mapping) -> list[dict]:
    """The SO2 ablation jobs of a config, for pricing them without data: one entry per
    variant with ``variant``, ``columns`` (features of its LightGBM) and ``fits`` (folds of
    the ablation schemes, each a LightGBM fit on ``1 - 1/k`` of the station-days)."""
    fits = sum(len(scheme_folds(s, cv_cfg)) for s in cv_cfg["ablation_schemes"])
    return [
        {
            "variant": v,
            "columns": len(cfg.base_columns) + len(cfg.conv_columns),
            "fits": fits,
        }
        for v, (_, cfg) in ablation_variants(features).items()
    ]


def ablation_variants(features: FeatureConfig) -> dict[str, tuple[str, FeatureConfig]]:
    """Variant name -> (toggled technique, features) of the ablation: ``full``, then
    ``no_<t>`` for each switched-on technique and ``with_<t>`` for each switched-off one
    (random ID, spatial sampling, convolution; the sequential input needs its column)."""
    variants = {"full": ("", features)}
    for t in TECHNIQUES:
        if getattr(features, t):
            variants[f"no_{t}"] = (t, features.without(t))
        elif t != "sequential":
            variants[f"with_{t}"] = (t, dataclasses.replace(features, **{t: True}))
    return variants


def ablation_variant_scores(
    frame: pd.DataFrame,
    variant: str,
    features: FeatureConfig,
    grid: Grid,
    settings: ModelSettings,
    splitters: Mapping[str, object],
    metrics=("r2", "rmse", "mae", "rb"),
    osse: Mapping | None = None,
) -> pd.DataFrame:
    """Scores ``variant, scheme, metric, value, n`` of one ablation variant (one job): the
    LightGBM model with ``features`` cross-validated under every scheme of ``splitters``
    and, with ``osse`` (as for :func:`osse_baseline_scores`), gridded and scored
    ``osse_grid``."""
    models = {
        variant: lambda: make("so2", "lightgbm", params=settings, features=features, grid=grid)
    }
    oof = cross_validate(frame, models, splitters)
    sc = score_frame(oof, by=["model", "scheme"], metrics=metrics)
    if osse is not None:
        grid_sc = osse_baseline_scores(models, frame, metrics=metrics, **osse)
        sc = pd.concat([sc, grid_sc], ignore_index=True)
    return sc.rename(columns={"model": "variant"})[["variant", "scheme", "metric", "value", "n"]]


def ablation_table(scores: pd.DataFrame, features: FeatureConfig) -> pd.DataFrame:
    """The ablation table from the variants' scores: ``variant, removed, scheme, metric,
    value, n, delta`` with ``delta`` = the variant's value minus the full model's."""
    variants = ablation_variants(features)
    missing = sorted(set(variants) - set(scores["variant"]))
    if missing or "full" not in set(scores["variant"]):
        raise ValueError(f"ablation: scores of variants {missing} are missing")
    order = {v: i for i, v in enumerate(variants)}
    sc = scores.sort_values("variant", key=lambda v: v.map(order), kind="stable").copy()
    sc["removed"] = sc["variant"].map({v: t for v, (t, _) in variants.items()})
    full = sc[sc["variant"] == "full"].set_index(["scheme", "metric"])["value"]
    sc["delta"] = (
        sc["value"].to_numpy()
        - full.reindex(pd.MultiIndex.from_frame(sc[["scheme", "metric"]])).to_numpy()
    )
    return sc[["variant", "removed", "scheme", "metric", "value", "n", "delta"]].reset_index(
        drop=True
    )


def ablation(
    frame: pd.DataFrame,
    features: FeatureConfig,
    grid: Grid,
    settings: ModelSettings,
    splitters: Mapping[str, object],
    metrics=("r2", "rmse", "mae", "rb"),
    osse: Mapping | None = None,
) -> pd.DataFrame:
    """The full LightGBM model, then with each technique toggled in turn
    (:func:`ablation_variants`), in one process: :func:`ablation_variant_scores` of every
    variant gathered by :func:`ablation_table`."""
    parts = [
        ablation_variant_scores(frame, v, cfg, grid, settings, splitters, metrics, osse)
        for v, (_, cfg) in ablation_variants(features).items()
    ]
    return ablation_table(pd.concat(parts, ignore_index=True), features)


def with_coords(frame: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Add ``lon``/``lat`` (pixel centres) from ``row``/``col``."""
    f = frame.copy()
    f["lon"] = grid.lon[f["col"].to_numpy(np.int64)]
    f["lat"] = grid.lat[f["row"].to_numpy(np.int64)]
    return f


def so2_splitters(schemes, cv_cfg: Mapping, seed: int) -> dict:
    """Splitters of the named schemes from the config's ``cv`` section.

    The ``region`` scheme holds out the named regions ``cv.regions`` (boxes or polygons);
    without any it is an error naming the key.
    """
    from ...cv import make_splitter

    out = {}
    for s in schemes:
        if s == "block_cv":
            out[s] = make_splitter(
                s, seed=seed, block_size=cv_cfg["block_size"], n_splits=cv_cfg["block_splits"]
            )
        elif s == "region":
            if not cv_cfg.get("regions"):
                raise ValueError(
                    "cv.regions is empty, but the region scheme holds out named regions: "
                    "name them (name -> [west, south, east, north] or a polygon ring) or "
                    "drop 'region' from cv.so2_schemes / cv.ablation_schemes"
                )
            out[s] = make_splitter(s, seed=seed, regions=cv_cfg["regions"])
        else:
            out[s] = make_splitter(s, seed=seed, n_splits=cv_cfg["n_splits"])
    return out


def scheme_folds(scheme: str, cv_cfg: Mapping) -> list[str]:
    """Fold labels of a scheme, known from the config alone (one CV job each): fold numbers,
    or the region names of the ``region`` scheme."""
    if scheme == "region":
        return [str(k) for k in so2_splitters([scheme], cv_cfg, 0)[scheme].names]
    n = cv_cfg["block_splits"] if scheme == "block_cv" else cv_cfg["n_splits"]
    return [str(k) for k in range(int(n))]


def scheme_models(scheme: str, cv_cfg: Mapping, baselines) -> list[str]:
    """Models a scheme refits in every fold: ``cv.so2_models[scheme]``, by default the full
    model and every baseline of ``model.so2_baselines``."""
    chosen = (cv_cfg.get("so2_models") or {}).get(scheme)
    return list(chosen) if chosen else ["lightgbm", *baselines]


def open_osse_inputs(dynamic_paths, static_path, truth_paths, variables, grid: Grid) -> dict:
    """The gridded inputs of :func:`osse_baseline_scores`: ``dynamic`` (the daily fields
    ``variables`` of the model), ``static`` layers and the OSSE ``truth`` (time, lat, lon)."""
    return {
        "dynamic": open_dynamic([read_netcdf(f) for f in dynamic_paths], variables, grid),
        "static": read_netcdf(static_path),
        "truth": xr.concat([read_netcdf(f)["so2"] for f in truth_paths], "time"),
    }


def _osse_days(times, every: int) -> np.ndarray:
    """Mask of the osse_grid days: every ``every``-th day counted from 1970-01-01."""
    days = (pd.DatetimeIndex(times).normalize() - pd.Timestamp("1970-01-01")).days
    return np.asarray(days) % max(int(every), 1) == 0


def osse_grid_scores(
    product_paths,
    truth_paths,
    model: str = "lightgbm",
    metrics=("r2", "rmse", "mae", "rb", "cc"),
    every: int = 1,
    mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """``osse_grid`` rows: the gridded product against the OSSE truth on every cell-day
    (``every`` = k: every k-th day since 1970-01-01, the days :func:`osse_baseline_scores`
    uses), only the cells inside the domain ``mask`` (lat, lon) when one is given.

    The years' cell-days are pooled; they are read and scored one day at a time
    (:class:`OssePairs`), so the memory is one day of the grid, not the period.
    """
    pairs = OssePairs()
    for pp, tp in zip(sorted(map(str, product_paths)), sorted(map(str, truth_paths))):
        with read_netcdf(pp) as dp, read_netcdf(tp) as dt:
            p, t = xr.align(dp["so2"], dt["so2"], join="inner")
            for i in np.flatnonzero(_osse_days(t["time"].values, every)):
                pairs.add(_inside(t[i].values, mask), _inside(p[i].values, mask))
    return pd.DataFrame(pairs.rows(model, metrics), columns=SCORE_COLUMNS)


class OssePairs:
    """The osse_grid pairs (truth, prediction) of one model, scored as they come.

    :meth:`add` keeps only the additive statistics of the valid pairs
    (:func:`gridfuse.evaluate.sufficient_stats`, float64 sums, ``chunk`` values at a time),
    and :meth:`rows` gives the metrics from them (:func:`gridfuse.evaluate.
    scores_from_stats`): the same values as scoring the pooled pairs at once
    (:func:`gridfuse.metrics.score_rows`, to ~1e-12 relative) without holding them.
    """

    def __init__(self, chunk: int = 1 << 22):
        from ...evaluate import sufficient_stats
        from ...metrics import DEFAULT_THRESHOLD

        self.chunk = int(chunk)
        self._thresholds = (DEFAULT_THRESHOLD,)
        self.stats = sufficient_stats(np.empty(0), np.empty(0), self._thresholds)

    def add(self, obs: np.ndarray, pred: np.ndarray) -> OssePairs:
        """Add the pairs of two flat arrays of one length (NaN on either side: no pair)."""
        from ...evaluate import add_stats, sufficient_stats

        obs, pred = np.ravel(obs), np.ravel(pred)
        if obs.shape != pred.shape:
            raise ValueError(f"obs and pred differ in size: {obs.size} vs {pred.size}")
        for i in range(0, obs.size, self.chunk):
            part = sufficient_stats(
                obs[i : i + self.chunk], pred[i : i + self.chunk], self._thresholds
            )
            self.stats = add_stats(self.stats, part)
        return self

    def rows(self, model: str, metrics=("r2", "rmse", "mae", "rb", "cc")) -> list[dict]:
        """``model, osse_grid, all, metric, value, n`` rows of the pairs added so far."""
        from ...evaluate import scores_from_stats

        sc = scores_from_stats(self.stats, self._thresholds[0])
        n = int(self.stats["n"])
        unknown = [m for m in metrics if m not in sc]
        if unknown:
            raise ValueError(f"osse_grid: unknown metrics {unknown}; expected some of {list(sc)}")
        return [
            {"model": model, "scheme": "osse_grid", "subset": "all", "metric": m, "value": sc[m]}
            | {"n": n}
            for m in metrics
        ]


def _inside(cube: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The values of ``cube (..., lat, lon)`` in the cells inside ``mask`` (all without),
    flattened (float32)."""
    a = np.asarray(cube, np.float32)
    if mask is None:
        return a.ravel()
    if a.shape[-2:] != mask.shape:
        raise ValueError(f"field of {a.shape[-2:]} cells; the mask has {mask.shape}")
    return a[..., mask].ravel()


def _grid_history(
    model: SO2Model, dynamic: xr.Dataset, static: xr.Dataset, t: int, rs: slice, cs: slice
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Day ``t`` of a tile as a sample frame, with the days before it that the model reads."""
    days = model.seq_len
    hist = tile_frame(dynamic, static, model.features, slice(max(t - days + 1, 0), t + 1), rs, cs)
    hist["station"] = (hist["row"] * dynamic.sizes["lon"] + hist["col"]).astype(str)
    day = hist[hist["date"] == hist["date"].max()]
    return day, hist


def _grid_engine(
    stack: contextlib.ExitStack,
    m: SO2Model,
    rows: int,
    predictor: str,
    compile_rows: float | None,
) -> str:
    """Let a fitted LightGBM model that will predict ``rows`` grid rows predict with its
    trees compiled (lleaves, in a temporary folder ``stack`` removes) when
    ``model.predictor`` is ``lleaves`` and ``rows`` reach ``compile_rows`` (default: the
    break-even of the cost constants' kernel rates, :func:`gridfuse.cost.lleaves_break_even_rows`);
    with ``Booster.predict`` otherwise. Returns the engine, logged with the reason."""
    from ... import cost
    from .compiled import compile_trees

    if m.estimator != "lightgbm" or m.booster is None:
        return m.estimator
    even = cost.lleaves_break_even_rows() if compile_rows is None else float(compile_rows)
    why = f"{rows:,} rows {{}} the break-even {even:,.0f} (model.predictor {predictor})"
    if str(predictor) != "lleaves" or rows < even:
        logger.info("%s predicts with Booster.predict: %s", m.name, why.format("vs"))
        return "lightgbm"
    d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gridfuse_lleaves_")))
    m.booster.save_model(str(d / "model.txt"))  # as SO2Model.save: the best iteration
    compile_trees(d / "model.txt")
    m.use_compiled(d)
    logger.info("%s predicts with compiled trees (lleaves): %s", m.name, why.format(">="))
    return "lleaves"


def osse_baseline_scores(
    models: Mapping[str, Callable[[], SO2Model]],
    table: pd.DataFrame,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    truth: xr.DataArray,
    *,
    every: int = 1,
    tile: int = 256,
    metrics=("r2", "rmse", "mae", "rb", "cc"),
    mask: np.ndarray | None = None,
    predictor: str = "lleaves",
    compile_rows: float | None = None,
) -> pd.DataFrame:
    """``osse_grid`` rows of models that make no gridded product (the baselines).

    Each model is fitted on every observed station-day of ``table`` (as the full model is
    for its product), predicts every cell of every ``every``-th day of ``dynamic`` (the
    LSTM from the cell's preceding days), and is scored against ``truth (time, lat, lon)``
    on those cell-days (the days of ``dynamic`` that the truth has); with a domain ``mask``
    only the cells inside it are predicted and scored.

    A LightGBM model predicts with its trees compiled once (lleaves) when ``predictor``
    (``model.predictor``) is ``lleaves`` and its grid rows (days x cells of the tiles) reach
    ``compile_rows`` (default: where compiling pays by the cost constants' kernel rates),
    with ``Booster.predict`` otherwise; both give the same values within 1e-6 relative.
    """
    times = pd.DatetimeIndex(dynamic["time"].values)
    sel = np.flatnonzero(_osse_days(times, every) & times.isin(truth["time"].values))
    if len(sel) == 0:
        raise ValueError("osse_grid: the truth has none of the days of the dynamic fields")
    ny, nx = dynamic.sizes["lat"], dynamic.sizes["lon"]
    tiles = tile_slices(ny, nx, tile, mask)  # the same tiles for every model and day
    rows = len(sel) * sum((rs.stop - rs.start) * (cs.stop - cs.start) for rs, cs in tiles)
    out = []
    for name, factory in models.items():
        m = factory().fit(table, table)
        pairs = OssePairs()  # scored day by day: the period's pairs are never held
        with contextlib.ExitStack() as stack:
            engine = _grid_engine(stack, m, rows, predictor, compile_rows)
            for t in sel:
                block = np.full((ny, nx), np.nan, dtype=np.float32)
                for rs, cs in tiles:
                    day, hist = _grid_history(m, dynamic, static, int(t), rs, cs)
                    block[rs, cs] = m.predict(day, hist).reshape(block[rs, cs].shape)
                pairs.add(_inside(truth.sel(time=times[t]).values, mask), _inside(block, mask))
        out += pairs.rows(name, metrics)
        logger.info(
            "osse_grid of %s: %d days of %d x %d cells (%s)", name, len(sel), ny, nx, engine
        )
    return pd.DataFrame(out, columns=SCORE_COLUMNS)
