"""Features of the SO2 model (Method A): calendar, location, random IDs, spatial sampling,
parameter convolution, sequential multi-pollutant input, and the table builder.

The package exports what each module lists in its ``__all__``.
"""

from . import calendar, convolution, location, random_id, sequential, spatial, table
from .calendar import *  # noqa: F403 - the modules' __all__ lists are the package's
from .convolution import *  # noqa: F403
from .location import *  # noqa: F403
from .random_id import *  # noqa: F403
from .sequential import *  # noqa: F403
from .spatial import *  # noqa: F403
from .table import *  # noqa: F403

__all__ = [
    name
    for module in (calendar, location, random_id, convolution, sequential, spatial, table)
    for name in module.__all__
]
