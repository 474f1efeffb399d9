"""Station roles: ``evaluation`` stations held out from training, the rest ``train``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from gridfuse.stations.qc import QCLog

logger = logging.getLogger(__name__)

__all__ = ["assign_roles", "evaluation_count"]


def evaluation_count(n_stations: int, *, ids: Sequence[str] = (), count: int = 0) -> int:
    """How many of ``n_stations`` stations :func:`assign_roles` holds out: the configured
    ``ids`` when there are any (each assumed among the stations), else ``count``, reduced so
    that at least one station trains.  The cost model counts the training stations with it."""
    if ids:
        return min(len(ids), n_stations)
    return max(0, min(int(count), n_stations - 1))


def assign_roles(
    stations: Iterable[str],
    *,
    ids: Sequence[str] = (),
    count: int = 0,
    seed: int = 0,
    qc: QCLog | None = None,
) -> pd.Series:
    """Mark evaluation stations; everything else is ``train``.

    Parameters
    ----------
    stations : iterable of str
        Candidate station ids (inside the grid, with data).
    ids : sequence of str
        Explicit evaluation stations; when non-empty they take precedence over ``count``.
        Ids not among ``stations`` are ignored and recorded (``evaluation_id_absent``).
    count : int
        Number of evaluation stations drawn without replacement with ``seed`` from the
        sorted ids (so the draw does not depend on input order).  At least one station is
        left for training: a count >= the number of stations is reduced (and logged).
    seed : int
        Random seed.
    qc : QCLog, optional
        Receives the role decisions.

    Returns
    -------
    Series
        Index = station id (sorted), values ``"train"`` or ``"evaluation"``.
    """
    ids_all = sorted({str(s) for s in stations})
    roles = pd.Series("train", index=pd.Index(ids_all, name="station"), name="role", dtype=object)
    if ids:
        wanted = [str(s) for s in ids]
        absent = [s for s in wanted if s not in roles.index]
        for s in absent:
            logger.warning("evaluation station %s is not among the ingested stations", s)
            if qc is not None:
                qc.record(
                    "evaluation_id_absent", s, 1, "configured evaluation id without data in grid"
                )
        chosen = [s for s in wanted if s in roles.index]
        how = f"{len(chosen)} of {len(wanted)} configured ids"
    else:
        n = evaluation_count(len(ids_all), count=count)
        if n < int(count) and len(ids_all) > 0:
            logger.warning(
                "evaluation.count %d >= %d stations; using %d so that one trains",
                int(count),
                len(ids_all),
                n,
            )
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(ids_all), size=max(n, 0), replace=False) if n > 0 else []
        chosen = [ids_all[i] for i in sorted(pick)]
        how = f"{len(chosen)} drawn with seed {seed}"
    roles.loc[chosen] = "evaluation"
    if qc is not None:
        qc.summary("evaluation", len(chosen), f"evaluation stations: {how}")
    logger.info("roles: %d evaluation (%s), %d train", len(chosen), how, len(roles) - len(chosen))
    return roles
