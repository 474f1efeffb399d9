"""gridfuse: daily ~1 km gridded environmental products from coarse sources and stations."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gridfuse")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
