"""SO2 model (Method A): LightGBM with random IDs, spatial sampling, parameter convolution
and sequential input; the baselines plain LightGBM, RF-Ps and LSTM; CV, ablation and tiled
prediction over the grid.

Models work on **sample frames** (:mod:`gridfuse.features.table`): ``fit(frame)`` on rows
with an observed ``value``, ``predict(frame)`` for any rows. The LSTM also needs the
station's preceding days, passed as ``history`` (the full station frame).

Model names (scores.csv): ``lightgbm`` (the full model), ``lightgbm_plain`` (no random ID,
spatial sampling, convolution or sequential input), ``rf_ps`` (random forest with position
parameters lon/lat/random ID), ``lstm``.

All stations are CV material: the SO2 record has no held-out evaluation stations, so the
``role`` column of stations.csv is not used here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..cv import RegionHoldout
from ..features.table import TECHNIQUES, FeatureBuilder, FeatureConfig, open_dynamic, tile_frame
from ..grid import Grid
from ..io import atomic_path, read_netcdf, save_npz
from ..metrics import SCORE_COLUMNS, score_frame

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_NAMES",
    "DEFAULT_LIGHTGBM",
    "ModelSettings",
    "SO2Model",
    "make_model",
    "fit_lightgbm",
    "cross_validate",
    "scores_from_oof",
    "ablation",
    "predict_tile",
    "predict_blocks",
    "with_coords",
    "predict_year",
    "predict_year_to_netcdf",
    "so2_splitters",
    "osse_grid_scores",
    "osse_baseline_scores",
    "open_osse_inputs",
]

#: Tables with fewer rows than this are fitted/predicted single-threaded.
SMALL_TABLE = 50_000

MODEL_NAMES = ("lightgbm", "lightgbm_plain", "rf_ps", "lstm")

#: LightGBM parameters of Spec A.8.
DEFAULT_LIGHTGBM = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 255,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
}


@dataclasses.dataclass
class ModelSettings:
    """Estimator settings (from the config's ``model`` section)."""

    lightgbm: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_LIGHTGBM))
    num_boost_round: int = 5000
    early_stopping_rounds: int = 100
    valid_fraction: float = 0.1
    rf: dict = dataclasses.field(
        default_factory=lambda: {"n_estimators": 500, "min_samples_leaf": 2}
    )
    lstm: dict = dataclasses.field(
        default_factory=lambda: {"hidden": 64, "layers": 2, "epochs": 30, "seq_len": 7}
    )
    seed: int = 0
    threads: int = 1

    @classmethod
    def from_config(cls, model_cfg: Mapping, seed: int = 0, threads: int = 1) -> ModelSettings:
        lg = dict(model_cfg.get("lightgbm", {}))
        s = cls(seed=seed, threads=threads)
        s.num_boost_round = int(lg.pop("num_boost_round", s.num_boost_round))
        s.early_stopping_rounds = int(lg.pop("early_stopping_rounds", s.early_stopping_rounds))
        s.valid_fraction = float(lg.pop("valid_fraction", s.valid_fraction))
        s.lightgbm.update(lg.pop("params", {}))
        s.lightgbm.update(lg)
        s.rf.update(model_cfg.get("rf_ps", {}))
        s.lstm.update(model_cfg.get("lstm", {}))
        return s


def _grouped_valid_mask(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray | None:
    """Rows of a random ``fraction`` of the groups (stations), or None when too few groups."""
    uniq = np.unique(groups)
    if fraction <= 0 or len(uniq) < 4:
        return None
    nval = max(1, int(round(fraction * len(uniq))))
    val = np.random.default_rng(seed).permutation(uniq)[:nval]
    return np.isin(groups, val)


def fit_lightgbm(
    X: np.ndarray,
    y: np.ndarray,
    *,
    groups: np.ndarray,
    weight: np.ndarray | None = None,
    params: Mapping | None = None,
    num_boost_round: int = 5000,
    early_stopping_rounds: int = 100,
    valid_fraction: float = 0.1,
    seed: int = 0,
    threads: int = 1,
    feature_names: list[str] | None = None,
) -> lgb.Booster:
    """LightGBM regression with early stopping on a station-grouped validation split.

    A seeded ``valid_fraction`` of the stations (``groups``) is set aside for early stopping;
    the booster keeps the best iteration. With fewer than 4 stations (or fraction 0) it trains
    ``num_boost_round`` rounds without validation.
    """
    p = {**DEFAULT_LIGHTGBM, **(params or {})}
    # OpenMP threads only pay off on large tables; on small ones (CV folds of a demo) they
    # mostly spin-wait, which is very slow on a shared, loaded machine
    nthreads = int(threads) if len(y) >= SMALL_TABLE else 1
    p.update(seed=seed, num_threads=nthreads, verbosity=-1, deterministic=True, force_row_wise=True)
    names = feature_names or "auto"
    w = np.ones(len(y), np.float32) if weight is None else np.asarray(weight, np.float32)
    val = _grouped_valid_mask(np.asarray(groups), valid_fraction, seed)
    if val is None or val.all() or not val.any():
        dtrain = lgb.Dataset(X, y, weight=w, feature_name=names, params={"verbosity": -1})
        return lgb.train(p, dtrain, num_boost_round=num_boost_round)
    dtrain = lgb.Dataset(
        X[~val], y[~val], weight=w[~val], feature_name=names, params={"verbosity": -1}
    )
    dval = lgb.Dataset(X[val], y[val], weight=w[val], reference=dtrain)
    booster = lgb.train(
        p,
        dtrain,
        num_boost_round=num_boost_round,
        valid_sets=[dval],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    logger.debug("LightGBM: best iteration %d of %d", booster.best_iteration, num_boost_round)
    return booster


def _seq_index(history: pd.DataFrame, frame: pd.DataFrame, seq_len: int) -> np.ndarray:
    """Row numbers in ``history`` of the ``seq_len`` days ending at each row of ``frame``."""
    pos = pd.Series(
        np.arange(len(history)),
        index=pd.MultiIndex.from_arrays(
            [history["station"].to_numpy(), pd.to_datetime(history["date"]).to_numpy()]
        ),
    )
    if not pos.index.is_unique:
        raise ValueError("LSTM history: (station, date) rows must be unique")
    st = frame["station"].to_numpy()
    d = pd.to_datetime(frame["date"])
    out = np.empty((len(frame), seq_len), dtype=np.int64)
    for j in range(seq_len):
        key = pd.MultiIndex.from_arrays([st, (d - pd.Timedelta(days=seq_len - 1 - j)).to_numpy()])
        out[:, j] = pos.reindex(key).fillna(-1).to_numpy(np.int64)
    return out


class SO2Model:
    """A feature builder plus an estimator (``lightgbm``, ``rf`` or ``lstm``).

    Parameters
    ----------
    name : str
        Model name in scores.csv.
    estimator : {"lightgbm", "rf", "lstm"}
    features : FeatureConfig
    grid : Grid
    settings : ModelSettings
    """

    def __init__(
        self,
        name: str,
        estimator: str,
        features: FeatureConfig,
        grid: Grid,
        settings: ModelSettings,
    ):
        if estimator not in ("lightgbm", "rf", "lstm"):
            raise ValueError(f"unknown estimator {estimator!r}; expected lightgbm, rf or lstm")
        self.name, self.estimator, self.features, self.grid = name, estimator, features, grid
        self.settings = settings
        self.builder = FeatureBuilder(features, grid)
        self.booster: lgb.Booster | None = None
        self._est = None

    @property
    def columns(self) -> list[str]:
        return self.builder.columns

    # ------------------------------------------------------------------ fit / predict
    def fit(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> SO2Model:
        frame = frame[np.isfinite(frame["value"].to_numpy(np.float64))]
        if len(frame) == 0:
            raise ValueError(f"{self.name}: no training rows with an observed value")
        y = frame["value"].to_numpy(np.float64)
        s = self.settings
        self.builder.fit(frame)
        if self.estimator == "lstm":
            from .lstm import LSTMRegressor

            lcfg = dict(s.lstm)
            self.seq_len = int(lcfg.pop("seq_len", 7))
            nthreads = s.threads if len(frame) >= SMALL_TABLE else 1
            self._est = LSTMRegressor(seed=s.seed, threads=nthreads, **lcfg)
            self._est.fit(self._sequences(frame, history), y)
            return self
        X = self.builder.transform(frame)
        if self.estimator == "rf":
            from sklearn.ensemble import RandomForestRegressor

            self._fill = np.nan_to_num(np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0))
            self._est = RandomForestRegressor(random_state=s.seed, n_jobs=s.threads, **s.rf)
            self._est.fit(np.where(np.isfinite(X), X, self._fill), y)
            return self
        self.booster = fit_lightgbm(
            X,
            y,
            groups=frame["station"].to_numpy(),
            weight=self.builder.weights(frame),
            params=s.lightgbm,
            num_boost_round=s.num_boost_round,
            early_stopping_rounds=s.early_stopping_rounds,
            valid_fraction=s.valid_fraction,
            seed=s.seed,
            threads=s.threads,
            feature_names=self.columns,
        )
        return self

    def _sequences(self, frame: pd.DataFrame, history: pd.DataFrame | None) -> np.ndarray:
        if history is None:
            raise ValueError("the LSTM needs the station history frame (all station-days)")
        Xh = self.builder.transform(history)
        idx = _seq_index(history, frame, self.seq_len)
        S = Xh[np.clip(idx, 0, None)]
        S[idx < 0] = np.nan
        return S

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Predictions from a ready feature matrix (LightGBM and RF; non-negative)."""
        if self.estimator == "lightgbm":
            if self.booster is None:
                raise RuntimeError(f"{self.name}: not fitted")
            nthreads = self.settings.threads if len(X) >= SMALL_TABLE else 1
            p = self.booster.predict(X, num_threads=nthreads)
        elif self.estimator == "rf":
            p = self._est.predict(np.where(np.isfinite(X), X, self._fill))
        else:
            raise ValueError("the LSTM predicts from sequences; use predict(frame, history)")
        return np.maximum(p, 0.0).astype(np.float32)

    def predict(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        if self.estimator == "lstm":
            return np.maximum(self._est.predict(self._sequences(frame, history)), 0.0)
        return self.predict_matrix(self.builder.transform(frame))

    # ------------------------------------------------------------------ storage
    def save(self, directory: str | os.PathLike, extra: Mapping | None = None) -> Path:
        """Store a fitted LightGBM model: ``model.txt``, ``features.npz``, ``model.json``."""
        if self.estimator != "lightgbm" or self.booster is None:
            raise ValueError("only a fitted LightGBM model can be saved")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        with atomic_path(d / "model.txt") as tmp:
            self.booster.save_model(str(tmp))
        with atomic_path(d / "features.npz") as tmp, open(tmp, "wb") as f:
            save_npz(f, **self.builder.state())
        meta = {
            "name": self.name,
            "estimator": self.estimator,
            "features": self.features.to_dict(),
            "columns": self.columns,
            "grid": dataclasses.asdict(self.grid),
            "settings": dataclasses.asdict(self.settings),
            "best_iteration": int(self.booster.best_iteration or self.booster.current_iteration()),
            "gridfuse_version": __version__,
            **(extra or {}),
        }
        with atomic_path(d / "model.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2, default=str))
        logger.info("saved %s (%d features) to %s", self.name, len(self.columns), d)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SO2Model:
        d = Path(directory)
        meta = json.loads((d / "model.json").read_text())
        grid = Grid(**meta["grid"])
        settings = ModelSettings(**meta["settings"])
        m = cls(
            meta["name"],
            meta["estimator"],
            FeatureConfig.from_dict(meta["features"]),
            grid,
            settings,
        )
        with np.load(d / "features.npz") as st:
            m.builder = FeatureBuilder.from_state(m.features, grid, dict(st))
        m.booster = lgb.Booster(model_file=str(d / "model.txt"))
        if m.columns != meta["columns"] or m.booster.feature_name() != meta["columns"]:
            raise ValueError(f"{d}: stored feature list does not match the rebuilt one")
        return m


def make_model(name: str, features: FeatureConfig, grid: Grid, settings: ModelSettings) -> SO2Model:
    """One of :data:`MODEL_NAMES` (or ``lightgbm_<anything>`` with the given features)."""
    if name == "lightgbm_plain":
        return SO2Model(name, "lightgbm", features.plain(), grid, settings)
    if name == "rf_ps":
        cfg = dataclasses.replace(features.plain(), random_id=True)
        return SO2Model(name, "rf", cfg, grid, settings)
    if name == "lstm":
        return SO2Model(name, "lstm", features.plain(), grid, settings)
    if name.startswith("lightgbm"):
        return SO2Model(name, "lightgbm", features, grid, settings)
    raise ValueError(f"unknown SO2 model {name!r}; expected one of {MODEL_NAMES}")


# ---------------------------------------------------------------------- evaluation
def _splits(splitter, frame: pd.DataFrame) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    xy = pd.DataFrame({"lon": frame["lon"].to_numpy(), "lat": frame["lat"].to_numpy()})
    groups = frame["station"].to_numpy()
    if isinstance(splitter, RegionHoldout):
        yield from splitter.split_named(xy, None, groups)
        return
    for tr, te in splitter.split(xy, None, groups):
        yield "all", tr, te


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
    frame = frame[np.isfinite(frame["value"].to_numpy(np.float64))].reset_index(drop=True)
    out = []
    for scheme, splitter in splitters.items():
        for k, (subset, tr, te) in enumerate(_splits(splitter, frame)):
            train, test = frame.iloc[tr], frame.iloc[te]
            for name, factory in models.items():
                m = factory().fit(train, history)
                pred = m.predict(test, history)
                out.append(
                    pd.DataFrame(
                        {
                            "model": name,
                            "scheme": scheme,
                            "fold": k,
                            "subset": subset,
                            "station": test["station"].to_numpy(),
                            "date": test["date"].to_numpy(),
                            "obs": test["value"].to_numpy(np.float64),
                            "pred": np.asarray(pred, np.float64),
                        }
                    )
                )
            logger.info(
                "%s fold %d (%s): %d train / %d test rows", scheme, k, subset, len(tr), len(te)
            )
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


def ablation(
    frame: pd.DataFrame,
    features: FeatureConfig,
    grid: Grid,
    settings: ModelSettings,
    splitters: Mapping[str, object],
    metrics=("r2", "rmse", "mae", "rb"),
    osse: Mapping | None = None,
) -> pd.DataFrame:
    """The full LightGBM model, then with each technique toggled in turn.

    A switched-on technique is removed (variant ``no_<t>``); a switched-off one (random ID,
    spatial sampling, convolution; the sequential input needs its column) is added
    (``with_<t>``), so every technique is measured against the configured model. With
    ``osse`` (``dynamic, static, truth`` and optionally ``every``, as for
    :func:`osse_baseline_scores`) every variant is also gridded and scored ``osse_grid``.

    Returns
    -------
    DataFrame ``variant, removed, scheme, metric, value, n, delta`` where ``removed`` names
    the toggled technique and ``delta`` is the variant's value minus the full model's (same
    scheme and metric).
    """
    variants = {"full": ("", features)}
    for t in TECHNIQUES:
        if getattr(features, t):
            variants[f"no_{t}"] = (t, features.without(t))
        elif t != "sequential":
            variants[f"with_{t}"] = (t, dataclasses.replace(features, **{t: True}))
    models = {
        v: (lambda cfg=cfg, v=v: SO2Model(v, "lightgbm", cfg, grid, settings))
        for v, (_, cfg) in variants.items()
    }
    oof = cross_validate(frame, models, splitters)
    sc = score_frame(oof, by=["model", "scheme"], metrics=metrics)
    if osse is not None:
        grid_sc = osse_baseline_scores(models, frame, metrics=metrics, **osse)
        sc = pd.concat([sc, grid_sc], ignore_index=True)
    sc = sc.rename(columns={"model": "variant"})
    sc["removed"] = sc["variant"].map({v: t for v, (t, _) in variants.items()})
    full = sc[sc["variant"] == "full"].set_index(["scheme", "metric"])["value"]
    sc["delta"] = (
        sc["value"].to_numpy()
        - full.reindex(pd.MultiIndex.from_frame(sc[["scheme", "metric"]])).to_numpy()
    )
    return sc[["variant", "removed", "scheme", "metric", "value", "n", "delta"]]


def with_coords(frame: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Add ``lon``/``lat`` (pixel centres) from ``row``/``col``."""
    f = frame.copy()
    f["lon"] = grid.lon[f["col"].to_numpy(np.int64)]
    f["lat"] = grid.lat[f["row"].to_numpy(np.int64)]
    return f


# ---------------------------------------------------------------------- prediction
def predict_tile(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    time_slice: slice,
    row_slice: slice,
    col_slice: slice,
) -> np.ndarray:
    """Prediction ``(time, rows, cols)`` of one tile (float32)."""
    fr = tile_frame(dynamic, static, model.features, time_slice, row_slice, col_slice)
    nt = len(dynamic["time"].values[time_slice])
    r0, r1, _ = row_slice.indices(dynamic.sizes["lat"])
    c0, c1, _ = col_slice.indices(dynamic.sizes["lon"])
    return model.predict(fr).reshape(nt, r1 - r0, c1 - c0)


def _tiles(ny: int, nx: int, tile: int) -> Iterator[tuple[slice, slice]]:
    """Row and column slices of the ``tile x tile`` tiles covering an ``ny x nx`` grid."""
    for r in range(0, ny, tile):
        for c in range(0, nx, tile):
            yield slice(r, min(r + tile, ny)), slice(c, min(c + tile, nx))


def predict_blocks(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    *,
    tile: int = 256,
    time_block: int = 8,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Predict the whole grid, ``time_block`` days at a time, in ``tile x tile`` tiles.

    Yields ``(time_slice, array (days, lat, lon))``; memory is bounded by one time block of
    the grid plus one tile's feature matrix.
    """
    nt, ny, nx = dynamic.sizes["time"], dynamic.sizes["lat"], dynamic.sizes["lon"]
    if (ny, nx) != model.grid.shape:
        raise ValueError(f"fields are {(ny, nx)} cells; the model's grid is {model.grid.shape}")
    for a in range(0, nt, time_block):
        ts = slice(a, min(a + time_block, nt))
        block = np.empty((ts.stop - ts.start, ny, nx), dtype=np.float32)
        for rs, cs in _tiles(ny, nx, tile):
            block[:, rs, cs] = predict_tile(model, dynamic, static, ts, rs, cs)
        logger.info("predicted days %d-%d of %d", ts.start + 1, ts.stop, nt)
        yield ts, block


def _blocks_with_geotiffs(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    *,
    tile: int,
    time_block: int,
    geotiff_dir: str | os.PathLike | None,
    gzip: bool,
) -> Iterator[tuple[slice, np.ndarray]]:
    """:func:`predict_blocks`, writing each block's days as COGs before yielding it."""
    from ..io import write_geotiff
    from ..kinds import get_kind

    kind = get_kind("so2")
    times = pd.DatetimeIndex(dynamic["time"].values)
    for ts, block in predict_blocks(model, dynamic, static, tile=tile, time_block=time_block):
        if geotiff_dir is not None:
            for i, day in enumerate(times[ts]):
                write_geotiff(
                    block[i],
                    Path(geotiff_dir) / kind.geotiff_name(day),
                    grid=model.grid,
                    gz=gzip,
                    tags={"units": kind.units, "date": f"{day:%Y-%m-%d}"},
                )
        yield ts, block


def predict_year(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    *,
    tile: int = 256,
    time_block: int = 8,
    geotiff_dir: str | os.PathLike | None = None,
    gzip: bool = False,
) -> xr.DataArray:
    """Predict every day of ``dynamic`` over the grid; optionally one COG per day.

    GeoTIFFs (``so2_YYYYMMDD.tif``, ``.gz`` appended with ``gzip``) are written as each
    time block finishes. Returns the ``so2`` DataArray ``(time, lat, lon)`` in ug/m3 (the
    whole period in memory: for large grids use :func:`predict_year_to_netcdf`).
    """
    times = pd.DatetimeIndex(dynamic["time"].values)
    out = np.empty((len(times), *model.grid.shape), dtype=np.float32)
    for ts, block in _blocks_with_geotiffs(
        model,
        dynamic,
        static,
        tile=tile,
        time_block=time_block,
        geotiff_dir=geotiff_dir,
        gzip=gzip,
    ):
        out[ts] = block
    return xr.DataArray(
        out,
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": model.grid.lat, "lon": model.grid.lon},
        name="so2",
    )


def predict_year_to_netcdf(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    path: str | os.PathLike,
    *,
    tile: int = 256,
    time_block: int = 8,
    geotiff_dir: str | os.PathLike | None = None,
    gzip: bool = False,
    cfg: Mapping | None = None,
    sources=(),
    utc_start_hour: int | None = None,
    flag_groups: Mapping[str, list[str]] | None = None,
) -> Path:
    """:func:`predict_year` streamed to the CF NetCDF ``path`` one time block at a time.

    Memory is one block of the grid (``time_block`` days) plus one tile's features, not the
    year (China at 0.01 deg: 0.7 GB per 8-day block instead of 33 GB per year).
    ``utc_start_hour`` (the day window) gives the file its ``time_bnds``; ``flag_groups``
    (source -> its variables in ``dynamic``) adds the quality layer: per cell-day, which
    sources had data (:func:`gridfuse.quality.flags_from_fields`).
    """
    from ..io import write_netcdf_blocks
    from ..quality import flags_from_fields

    blocks = _blocks_with_geotiffs(
        model,
        dynamic,
        static,
        tile=tile,
        time_block=time_block,
        geotiff_dir=geotiff_dir,
        gzip=gzip,
    )
    if flag_groups:
        names = sorted({v for vs in flag_groups.values() for v in vs})

        def with_flags(blocks):
            for ts, block in blocks:
                fields = {
                    v: dynamic[v].isel(time=ts).transpose("time", "lat", "lon").values
                    for v in names
                }
                yield ts, block, flags_from_fields(fields, flag_groups)

        blocks = with_flags(blocks)
    return write_netcdf_blocks(
        path,
        "so2",
        blocks,
        times=dynamic["time"].values,
        lat=model.grid.lat,
        lon=model.grid.lon,
        cfg=cfg,
        sources=sources,
        utc_start_hour=utc_start_hour,
        flag_sources=list(flag_groups) if flag_groups else None,
        what="SO2 LightGBM prediction",
    )


def so2_splitters(schemes, cv_cfg: Mapping, seed: int) -> dict:
    """Splitters of the named schemes from the config's ``cv`` section."""
    from ..cv import make_splitter

    out = {}
    for s in schemes:
        if s == "block_cv":
            out[s] = make_splitter(
                s, seed=seed, block_size=cv_cfg["block_size"], n_splits=cv_cfg["block_splits"]
            )
        elif s == "region":
            regions = cv_cfg.get("regions") or None
            out[s] = make_splitter(
                s, seed=seed, regions=regions, block_size=cv_cfg["region_block_size"]
            )
        else:
            out[s] = make_splitter(s, seed=seed, n_splits=cv_cfg["n_splits"])
    return out


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
) -> pd.DataFrame:
    """``osse_grid`` rows: the gridded product against the OSSE truth on every cell-day
    (``every`` = k: every k-th day since 1970-01-01, the days :func:`osse_baseline_scores`
    uses).

    The years' cell-days are pooled (demo-sized grids; the truth exists only in the OSSE).
    """
    from ..metrics import score_rows

    obs, pred = [], []
    for pp, tp in zip(sorted(map(str, product_paths)), sorted(map(str, truth_paths))):
        p = read_netcdf(pp)["so2"]
        t = read_netcdf(tp)["so2"]
        p, t = xr.align(p, t, join="inner")
        keep = _osse_days(t["time"].values, every)
        p, t = p.isel(time=keep), t.isel(time=keep)
        obs.append(np.asarray(t.values, np.float32).ravel())
        pred.append(np.asarray(p.values, np.float32).ravel())
    rows = score_rows(
        model, "osse_grid", "all", np.concatenate(obs), np.concatenate(pred), metrics=metrics
    )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _grid_history(
    model: SO2Model, dynamic: xr.Dataset, static: xr.Dataset, t: int, rs: slice, cs: slice
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Day ``t`` of a tile as a sample frame, with the days before it that the model reads."""
    days = int(getattr(model, "seq_len", 1)) if model.estimator == "lstm" else 1
    hist = tile_frame(dynamic, static, model.features, slice(max(t - days + 1, 0), t + 1), rs, cs)
    hist["station"] = (hist["row"] * dynamic.sizes["lon"] + hist["col"]).astype(str)
    day = hist[hist["date"] == hist["date"].max()]
    return day, hist


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
) -> pd.DataFrame:
    """``osse_grid`` rows of models that make no gridded product (the baselines).

    Each model is fitted on every observed station-day of ``table`` (as the full model is
    for its product), predicts every cell of every ``every``-th day of ``dynamic`` (the
    LSTM from the cell's preceding days), and is scored against ``truth (time, lat, lon)``
    on those cell-days (the days of ``dynamic`` that the truth has).
    """
    from ..metrics import score_rows

    times = pd.DatetimeIndex(dynamic["time"].values)
    sel = np.flatnonzero(_osse_days(times, every) & times.isin(truth["time"].values))
    if len(sel) == 0:
        raise ValueError("osse_grid: the truth has none of the days of the dynamic fields")
    ny, nx = dynamic.sizes["lat"], dynamic.sizes["lon"]
    out = []
    for name, factory in models.items():
        m = factory().fit(table, table)
        obs, pred = [], []
        for t in sel:
            block = np.empty((ny, nx), dtype=np.float32)
            for rs, cs in _tiles(ny, nx, tile):
                day, hist = _grid_history(m, dynamic, static, int(t), rs, cs)
                block[rs, cs] = m.predict(day, hist).reshape(block[rs, cs].shape)
            obs.append(np.asarray(truth.sel(time=times[t]).values, np.float32).ravel())
            pred.append(block.ravel())
        out += score_rows(
            name, "osse_grid", "all", np.concatenate(obs), np.concatenate(pred), metrics=metrics
        )
        logger.info("osse_grid of %s: %d days of %d x %d cells", name, len(sel), ny, nx)
    return pd.DataFrame(out, columns=SCORE_COLUMNS)
