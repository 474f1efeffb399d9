"""Logging for workflow scripts: the rule's log file, stderr, and uncaught tracebacks."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

__all__ = ["setup_logging", "from_snakemake"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(
    log_file: str | Path | None = None, level: int | str = logging.INFO
) -> logging.Logger:
    """Send log records to ``log_file`` (if given) and stderr; log uncaught exceptions.

    Returns the ``gridfuse`` logger.  Safe to call more than once (handlers are replaced).
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    fmt = logging.Formatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(level)
    for noisy in ("matplotlib", "fiona", "rasterio", "numexpr", "h5py", "PIL", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.simplefilter("default")

    def _excepthook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        logging.getLogger("gridfuse").critical("uncaught exception", exc_info=(exc_type, exc, tb))

    sys.excepthook = _excepthook
    return logging.getLogger("gridfuse")


def from_snakemake(smk) -> logging.Logger:
    """Set up logging for a Snakemake ``script:`` from its ``snakemake`` object."""
    log = smk.log[0] if len(smk.log) else None
    logger = setup_logging(log)
    logger.info("rule %s, wildcards %s, threads %s", smk.rule, dict(smk.wildcards), smk.threads)
    return logger
