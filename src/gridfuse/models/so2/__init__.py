"""The SO2 model family (Method A): the estimator and its baselines
(:mod:`~gridfuse.models.so2.estimator`), their evaluation (:mod:`~gridfuse.models.so2.evaluation`)
and the gridded prediction (:mod:`~gridfuse.models.so2.prediction`)."""

from ..registry import names
from .estimator import (
    DEFAULT_LIGHTGBM,
    SMALL_TABLE,
    ModelSettings,
    SO2Model,
    fit_lightgbm,
)
from .evaluation import (
    ablation,
    ablation_plan,
    ablation_table,
    ablation_variant_scores,
    ablation_variants,
    cross_validate,
    cross_validate_fold,
    cv_plan,
    fold_predictions,
    gather_scores,
    observed,
    open_osse_inputs,
    osse_baseline_scores,
    osse_grid_scores,
    scheme_folds,
    scheme_models,
    scores_from_oof,
    so2_splitters,
    with_coords,
)
from .prediction import predict_blocks, predict_tile, predict_year, predict_year_to_netcdf, tiles

#: the SO2 models of scores.csv (registered in :mod:`gridfuse.models.registry`)
MODEL_NAMES = names("so2")

__all__ = [
    "MODEL_NAMES",
    "DEFAULT_LIGHTGBM",
    "SMALL_TABLE",
    "ModelSettings",
    "SO2Model",
    "fit_lightgbm",
    "cross_validate",
    "cross_validate_fold",
    "fold_predictions",
    "observed",
    "gather_scores",
    "scheme_folds",
    "scheme_models",
    "ablation_variants",
    "ablation_variant_scores",
    "ablation_table",
    "cv_plan",
    "ablation_plan",
    "scores_from_oof",
    "ablation",
    "with_coords",
    "so2_splitters",
    "osse_grid_scores",
    "osse_baseline_scores",
    "open_osse_inputs",
    "tiles",
    "predict_tile",
    "predict_blocks",
    "predict_year",
    "predict_year_to_netcdf",
]
