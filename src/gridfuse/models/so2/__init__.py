"""The SO2 model family (Method A): the estimator and its baselines
(:mod:`~gridfuse.models.so2.estimator`), their evaluation (:mod:`~gridfuse.models.so2.evaluation`),
the gridded prediction (:mod:`~gridfuse.models.so2.prediction`) and its compiled trees
(:mod:`~gridfuse.models.so2.compiled`).

The package exports what each module lists in its ``__all__``.
"""

from ..registry import names
from . import compiled, estimator, evaluation, prediction
from .compiled import *  # noqa: F403 - the modules' __all__ lists are the package's
from .estimator import *  # noqa: F403
from .evaluation import *  # noqa: F403
from .prediction import *  # noqa: F403

#: the SO2 models of scores.csv (registered in :mod:`gridfuse.models.registry`)
MODEL_NAMES = names("so2")

__all__ = [
    "MODEL_NAMES",
    *compiled.__all__,
    *estimator.__all__,
    *evaluation.__all__,
    *prediction.__all__,
]
