"""One factory for every model of both product kinds: :func:`make`.

Each model is registered under its product kind and name (:data:`MODELS`) and built with the
same arguments, whatever the kind::

    make(kind, name, *, seed=0, threads=1, params=None, **inputs)

- ``seed``, ``threads``: the run's seed and the CPU threads of the job;
- ``params``: the product's model settings, each model reading its own entry --
  precipitation: ``{model name: {setting: value}}`` (the config's ``baselines`` section);
  SO2: the config's ``model`` section (``lightgbm``, ``rf_ps``, ``lstm`` entries) or a
  ready :class:`~gridfuse.models.so2.estimator.ModelSettings`;
- ``inputs``: what the kind's samples need to shape a model -- precipitation station-cell
  models: ``n_sources`` (the leading source columns, log-transformed by the tabular models
  and told apart from the covariates by RF-MEP); gauge-only interpolations: ``min_gauges``;
  SO2: ``features`` (a :class:`~gridfuse.features.FeatureConfig`) and ``grid``.

Every model has a ``name`` and ``fit(...)`` returning the model; ``predict(...)`` returns
non-negative values.  Their samples are the kind's:

- ``station-cell`` (precipitation baselines): ``fit(X, y)``, ``predict(X)`` with ``X`` the
  sources' values at a cell (``(n, columns)``; the linear merges also take grids ``(..., k)``);
- ``gauge-only`` (precipitation interpolations ``idw``, ``ok``): ``fit(lat, lon, values)``,
  ``predict(lat, lon, values, target_lat, target_lon)``
  (:class:`~gridfuse.gauges.GaugeInterpolator`);
- ``sample-frame`` (SO2 models): ``fit(frame, history)``, ``predict(frame, history)`` on the
  feature tables of :mod:`gridfuse.features.table`; inside, a feature builder and one
  estimator of :data:`~gridfuse.models.so2.estimator.ESTIMATORS` (``fit(X, y)``,
  ``predict(X)`` on feature matrices).

A new model: a class with that protocol and one entry in :data:`MODELS`
(``docs/extending.md``).  The modules are imported only when a model is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["ModelEntry", "MODELS", "make", "names", "family", "settings_keys"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its sample ``family``, ``build(name, seed, threads, params,
    **inputs)`` and the entry of ``params`` it reads (``settings``; None: it has none), so
    the workflow gives a job only the settings of the models it fits."""

    family: str
    build: Callable[..., object]
    description: str = ""
    settings: str | None = None


# --------------------------------------------------------------------------- precipitation
def _own(params: Mapping | None, name: str) -> dict:
    return dict((params or {}).get(name) or {})


def _linear(name, seed, threads, params, **_):  # noqa: ARG001 - one signature for all
    from .precip_baselines import IEVW, OORA, OWA

    return {"oora": OORA, "owa": OWA, "ievw": IEVW}[name]()


def _tabular(name, seed, threads, params, *, n_sources: int, **_):
    from .precip_baselines import TabularRegressor

    return TabularRegressor(
        name,
        log_columns=list(range(n_sources)),
        seed=seed,
        threads=threads,
        params=_own(params, name) or None,
    )


def _rf_mep(name, seed, threads, params, *, n_sources: int, **_):
    from .rf_mep import RFMEPRegressor

    return RFMEPRegressor(n_sources, seed=seed, threads=threads, params=_own(params, name))


def _gauge_only(name, seed, threads, params, *, min_gauges: int = 3, **_):  # noqa: ARG001
    from ..gauges import GaugeInterpolator

    return GaugeInterpolator(name, min_gauges=min_gauges)


# --------------------------------------------------------------------------- SO2
def _so2(name, seed, threads, params, *, features, grid, **_):
    import dataclasses

    from .so2.estimator import ModelSettings, SO2Model

    if isinstance(params, ModelSettings):
        settings = params
    else:
        settings = ModelSettings.from_config(params or {}, seed=seed, threads=threads)
    if name == "lightgbm":
        return SO2Model(name, "lightgbm", features, grid, settings)
    if name == "lightgbm_plain":
        return SO2Model(name, "lightgbm", features.plain(), grid, settings)
    if name == "rf_ps":
        ps = dataclasses.replace(features.plain(), random_id=True)
        return SO2Model(name, "rf", ps, grid, settings)
    return SO2Model(name, "lstm", features.plain(), grid, settings)


MODELS: dict[str, dict[str, ModelEntry]] = {
    "precip": {
        "oora": ModelEntry("station-cell", _linear, "one-outlier-removed average"),
        "owa": ModelEntry("station-cell", _linear, "optimized weighted average"),
        "ievw": ModelEntry("station-cell", _linear, "inverse error-variance weighting"),
        "rf": ModelEntry("station-cell", _tabular, "random forest", "rf"),
        "lightgbm": ModelEntry("station-cell", _tabular, "LightGBM", "lightgbm"),
        "mlp": ModelEntry("station-cell", _tabular, "multilayer perceptron", "mlp"),
        "rf_mep": ModelEntry("station-cell", _rf_mep, "RF, merged-product distances", "rf_mep"),
        "idw": ModelEntry("gauge-only", _gauge_only, "inverse distance weighting"),
        "ok": ModelEntry("gauge-only", _gauge_only, "ordinary kriging"),
    },
    "so2": {
        "lightgbm": ModelEntry("sample-frame", _so2, "Method A, all techniques", "lightgbm"),
        "lightgbm_plain": ModelEntry("sample-frame", _so2, "LightGBM, no technique", "lightgbm"),
        "rf_ps": ModelEntry("sample-frame", _so2, "RF, position parameters", "rf_ps"),
        "lstm": ModelEntry("sample-frame", _so2, "LSTM on the preceding days", "lstm"),
    },
}


def names(kind: str, family: str | None = None) -> tuple[str, ...]:
    """The registered model names of a kind (of one sample ``family`` if given)."""
    if kind not in MODELS:
        raise ValueError(f"no models for product kind {kind!r}; known: {sorted(MODELS)}")
    return tuple(n for n, e in MODELS[kind].items() if family in (None, e.family))


def family(kind: str, name: str) -> str:
    """The sample family (``station-cell``, ``gauge-only``, ``sample-frame``) of a model."""
    return _entry(kind, name).family


def settings_keys(kind: str, models) -> list[str]:
    """The ``params`` entries the ``models`` read, each once, in registry order."""
    want = {_entry(kind, n).settings for n in models} - {None}
    keys = [e.settings for e in MODELS[kind].values() if e.settings in want]
    return list(dict.fromkeys(keys))


def _entry(kind: str, name: str) -> ModelEntry:
    entry = MODELS.get(kind, {}).get(name)
    if entry is None:
        raise ValueError(f"unknown {kind} model {name!r}; known: {list(names(kind))}")
    return entry


def make(
    kind: str,
    name: str,
    *,
    seed: int = 0,
    threads: int = 1,
    params: Mapping | object | None = None,
    **inputs,
):
    """A new, unfitted model ``name`` of product ``kind`` (see the module docstring)."""
    return _entry(kind, name).build(name, int(seed), int(threads), params, **inputs)
