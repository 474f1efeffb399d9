"""SO2 estimator (Method A): LightGBM with random IDs, spatial sampling, parameter
convolution and sequential input, and the baselines plain LightGBM, RF-Ps and LSTM.

Models work on **sample frames** (:mod:`gridfuse.features.table`): ``fit(frame)`` on rows
with an observed ``value``, ``predict(frame)`` for any rows. The LSTM also needs the
station's preceding days, passed as ``history`` (the full station frame).

Model names (scores.csv): ``lightgbm`` (the full model), ``lightgbm_plain`` (no random ID,
spatial sampling, convolution or sequential input), ``rf_ps`` (random forest with position
parameters lon/lat/random ID), ``lstm``; made by :func:`gridfuse.models.registry.make`
(kind ``so2``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from ... import __version__
from ...features.table import FeatureBuilder, FeatureConfig
from ...grid import Grid
from ...io import atomic_path, save_npz

logger = logging.getLogger(__name__)

__all__ = [
    "ESTIMATORS",
    "LightGBMEstimator",
    "ForestEstimator",
    "SequenceEstimator",
    "DEFAULT_LIGHTGBM",
    "SMALL_TABLE",
    "ModelSettings",
    "SO2Model",
    "fit_lightgbm",
]

#: Tables with fewer rows than this are fitted/predicted single-threaded.
SMALL_TABLE = 50_000

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


class LightGBMEstimator:
    """LightGBM on a feature matrix (:func:`fit_lightgbm`: station-grouped early stopping,
    the builder's sample weights)."""

    estimator = "lightgbm"
    weighted = True

    def __init__(self, settings: ModelSettings):
        self.settings = settings
        self.booster: lgb.Booster | None = None
        #: the booster's trees compiled (:mod:`~gridfuse.models.so2.compiled`); when set,
        #: predictions come from them
        self.compiled = None

    def fit(self, X, y, *, groups, weight=None, feature_names=None) -> LightGBMEstimator:
        s = self.settings
        self.booster = fit_lightgbm(
            X,
            y,
            groups=groups,
            weight=weight,
            params=s.lightgbm,
            num_boost_round=s.num_boost_round,
            early_stopping_rounds=s.early_stopping_rounds,
            valid_fraction=s.valid_fraction,
            seed=s.seed,
            threads=s.threads,
            feature_names=feature_names,
        )
        return self

    def predict(self, X, threads: int) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("LightGBM: not fitted")
        nthreads = threads if len(X) >= SMALL_TABLE else 1
        if self.compiled is not None:
            return self.compiled.predict(X, nthreads)
        return self.booster.predict(X, num_threads=nthreads)


class ForestEstimator:
    """Random forest on a feature matrix; missing features are filled with the training
    medians."""

    estimator = "rf"
    weighted = False

    def __init__(self, settings: ModelSettings):
        self.settings = settings

    def fit(self, X, y, **_) -> ForestEstimator:
        from sklearn.ensemble import RandomForestRegressor

        s = self.settings
        self._fill = np.nan_to_num(np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0))
        self._est = RandomForestRegressor(random_state=s.seed, n_jobs=s.threads, **s.rf)
        self._est.fit(np.where(np.isfinite(X), X, self._fill), y)
        return self

    def predict(self, X, threads: int) -> np.ndarray:  # noqa: ARG002 - the fit's n_jobs
        return self._est.predict(np.where(np.isfinite(X), X, self._fill))


class SequenceEstimator:
    """The LSTM on sequences ``(n, seq_len, n_features)`` of each row's preceding days."""

    estimator = "lstm"
    weighted = False

    def __init__(self, settings: ModelSettings):
        self.settings = settings
        self.seq_len = int(settings.lstm.get("seq_len", 7))

    def fit(self, S, y, **_) -> SequenceEstimator:
        from ..lstm import LSTMRegressor

        s = self.settings
        lcfg = {k: v for k, v in s.lstm.items() if k != "seq_len"}
        nthreads = s.threads if len(y) >= SMALL_TABLE else 1
        self._est = LSTMRegressor(seed=s.seed, threads=nthreads, **lcfg)
        self._est.fit(S, y)
        return self

    def predict(self, S, threads: int) -> np.ndarray:  # noqa: ARG002 - set at fit
        return self._est.predict(S)


#: estimator name -> class (each ``fit(X, y, groups=, weight=, feature_names=)`` and
#: ``predict(X, threads)`` on the builder's features, sequences for the LSTM)
ESTIMATORS = {e.estimator: e for e in (LightGBMEstimator, ForestEstimator, SequenceEstimator)}


class SO2Model:
    """A feature builder plus an estimator (``lightgbm``, ``rf`` or ``lstm``).

    Parameters
    ----------
    name : str
        Model name in scores.csv.
    estimator : {"lightgbm", "rf", "lstm"}
        The estimator (:data:`ESTIMATORS`) fitted on the builder's features (on sequences of
        them for ``lstm``).
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
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; expected lightgbm, rf or lstm")
        self.name, self.estimator, self.features, self.grid = name, estimator, features, grid
        self.settings = settings
        self.builder = FeatureBuilder(features, grid)
        self._est = ESTIMATORS[estimator](settings)

    @property
    def columns(self) -> list[str]:
        return self.builder.columns

    @property
    def booster(self) -> lgb.Booster | None:
        """The fitted LightGBM booster (None for the other estimators or before fitting)."""
        return getattr(self._est, "booster", None)

    @booster.setter
    def booster(self, booster: lgb.Booster) -> None:
        if self.estimator != "lightgbm":
            raise ValueError(f"{self.name}: a booster belongs to a lightgbm model")
        self._est.booster = booster

    def use_compiled(self, directory: str | os.PathLike) -> SO2Model:
        """Predict with the compiled trees stored beside ``model.txt`` in ``directory``
        (:func:`~gridfuse.models.so2.compiled.load_compiled`; model.predictor lleaves)."""
        from .compiled import load_compiled

        if self.estimator != "lightgbm" or self.booster is None:
            raise ValueError(f"{self.name}: only a fitted LightGBM model has compiled trees")
        self._est.compiled = load_compiled(Path(directory) / "model.txt")
        return self

    @property
    def seq_len(self) -> int:
        """Days per input sequence (1 for the per-day estimators)."""
        return getattr(self._est, "seq_len", 1)

    # ------------------------------------------------------------------ fit / predict
    def fit(self, frame: pd.DataFrame, history: pd.DataFrame | None = None) -> SO2Model:
        frame = frame[np.isfinite(frame["value"].to_numpy(np.float64))]
        if len(frame) == 0:
            raise ValueError(f"{self.name}: no training rows with an observed value")
        self.builder.fit(frame)
        self._est.fit(
            self._inputs(frame, history),
            frame["value"].to_numpy(np.float64),
            groups=frame["station"].to_numpy(),
            weight=self.builder.weights(frame) if self._est.weighted else None,
            feature_names=self.columns,
        )
        return self

    def _inputs(self, frame: pd.DataFrame, history: pd.DataFrame | None) -> np.ndarray:
        """The estimator's input rows: features, or their sequences for the LSTM."""
        if self.estimator != "lstm":
            return self.builder.transform(frame)
        if history is None:
            raise ValueError("the LSTM needs the station history frame (all station-days)")
        Xh = self.builder.transform(history)
        idx = _seq_index(history, frame, self.seq_len)
        S = Xh[np.clip(idx, 0, None)]
        S[idx < 0] = np.nan
        return S

    def predict_matrix(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Predictions from a ready feature matrix (LightGBM and RF; non-negative).

        ``threads`` overrides the settings' threads (small matrices use one thread)."""
        if self.estimator == "lstm":
            raise ValueError("the LSTM predicts from sequences; use predict(frame, history)")
        if self.estimator == "lightgbm" and self.booster is None:
            raise RuntimeError(f"{self.name}: not fitted")
        nthreads = self.settings.threads if threads is None else int(threads)
        return np.maximum(self._est.predict(X, nthreads), 0.0).astype(np.float32)

    def predict(
        self,
        frame: pd.DataFrame,
        history: pd.DataFrame | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        if self.estimator == "lstm":
            return np.maximum(self._est.predict(self._inputs(frame, history), 0), 0.0)
        return self.predict_matrix(self.builder.transform(frame), threads=threads)

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
