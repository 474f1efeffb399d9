"""The SO2 model family (Method A): the estimator and its baselines
(:mod:`~gridfuse.models.so2.estimator`), their evaluation (:mod:`~gridfuse.models.so2.evaluation`)
and the gridded prediction (:mod:`~gridfuse.models.so2.prediction`).

The package exports what each module lists in its ``__all__``.
"""

from ..registry import names
from . import estimator, evaluation, prediction
from .estimator import *  # noqa: F403 - the modules' __all__ lists are the package's
from .evaluation import *  # noqa: F403
from .prediction import *  # noqa: F403

#: the SO2 models of scores.csv (registered in :mod:`gridfuse.models.registry`)
MODEL_NAMES = names("so2")

__all__ = ["MODEL_NAMES", *estimator.__all__, *evaluation.__all__, *prediction.__all__]
