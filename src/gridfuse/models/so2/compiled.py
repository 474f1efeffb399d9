"""Compiled trees for the gridded SO2 prediction (``model.predictor: lleaves``).

The stored LightGBM model (``model.txt``) is compiled once to machine code by lleaves (LLVM)
and cached beside it (``model.lleaves.o`` with a ``model.lleaves.json`` record of what it
was compiled from and for); every predict job loads that object instead of walking the
trees with ``Booster.predict``. The compiled forest evaluates the same thresholds in double
precision with the same missing-value directions, so its predictions equal LightGBM's up to
the order of the sum over trees (tests check 1e-6 relative; benchmarks/cost_constants.py
measures the speed against Booster.predict in the same run).

The object is machine code for the CPU it was compiled on (LLVM's host CPU and features).
A job on a different CPU compiles the trees again in its own temporary folder (logged, with
the reason and the time it took) rather than run code its CPU may not have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from ...io import atomic_path

logger = logging.getLogger(__name__)

__all__ = [
    "PREDICTORS",
    "CompiledTrees",
    "compile_trees",
    "compiled_paths",
    "load_compiled",
]

#: engines of the gridded prediction (config key model.predictor)
PREDICTORS = ("lleaves", "lightgbm")
#: lleaves' inlining flag: False compiles several times faster (benchmarks/cost_constants.py)
FINLINE = False
KEY = "model.predictor"
#: rows converted to float64 and predicted at a time (8,192 rows x 170 columns: 11 MB)
CHUNK_ROWS = 8192


def compiled_paths(model_txt: str | os.PathLike) -> tuple[Path, Path]:
    """The compiled object and its record beside ``model.txt``."""
    d = Path(model_txt).parent
    return d / "model.lleaves.o", d / "model.lleaves.json"


def _lleaves():
    try:
        import lleaves
        import llvmlite.binding as llvm
    except ImportError as err:
        raise RuntimeError(
            f"{KEY} is 'lleaves' but lleaves cannot be imported ({err}); install it with "
            "`pip install lleaves 'llvmlite>=0.43,<0.45'` (pyproject.toml declares both) or "
            f"set {KEY}: lightgbm"
        ) from err
    return lleaves, llvm


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _target() -> dict:
    """The host CPU LLVM compiles for (name and feature string, as lleaves reads them)."""
    _, llvm = _lleaves()
    llvm.initialize()
    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot detect them; lleaves then compiles without features
        features = ""
    return {"cpu": llvm.get_host_cpu_name(), "cpu_features": features}


def _versions() -> dict:
    return {p: metadata.version(p) for p in ("lleaves", "llvmlite", "lightgbm")}


def _compile(model_txt: Path, obj: Path):
    """lleaves model of ``model_txt`` compiled to (or, when it exists, loaded from) ``obj``."""
    lleaves, _ = _lleaves()
    model = lleaves.Model(model_file=str(model_txt))
    try:
        model.compile(cache=str(obj), finline=FINLINE)
    except Exception as err:
        raise RuntimeError(
            f"{model_txt}: lleaves could not compile the trees ({type(err).__name__}: {err}); "
            f"set {KEY}: lightgbm to predict with LightGBM itself"
        ) from err
    return model


def compile_trees(model_txt: str | os.PathLike, obj: str | os.PathLike | None = None) -> dict:
    """Compile the LightGBM model ``model_txt`` and write the object and its record
    (default: :func:`compiled_paths`), each atomically. Returns the record.

    The object is the same bytes for the same model, lleaves/LLVM and CPU (checked by
    tests/test_so2_compiled.py)."""
    model_txt = Path(model_txt)
    obj = Path(obj) if obj is not None else compiled_paths(model_txt)[0]
    record_path = obj.with_suffix(".json")
    t0 = time.process_time()
    with atomic_path(obj) as tmp:
        tmp.unlink()  # lleaves loads an existing cache file instead of compiling
        model = _compile(model_txt, tmp)
        if not tmp.is_file():
            raise RuntimeError(f"{model_txt}: lleaves wrote no object file")
    record = {
        "model": model_txt.name,
        "model_sha256": _sha256(model_txt),
        "trees": int(model.num_trees()),
        "features": int(model.num_feature()),
        "finline": FINLINE,
        **_target(),
        **_versions(),
    }
    with atomic_path(record_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    logger.info(
        "compiled %d trees of %s for %s in %.1f CPU s (%s, %.1f MB)",
        record["trees"],
        model_txt,
        record["cpu"],
        time.process_time() - t0,
        obj,
        obj.stat().st_size / 1e6,
    )
    return record


class CompiledTrees:
    """A compiled LightGBM forest: ``predict(X, threads)`` like ``Booster.predict``."""

    def __init__(self, model, record: dict, keep=None):
        self._model = model
        self.record = record
        self._keep = keep  # a temporary folder that must outlive the loaded object

    def predict(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Raw predictions (float64) of the rows of ``X`` on ``threads`` threads (rows are
        independent, so neither the thread count nor the chunks change a value).

        The compiled code reads float64 rows: a float32 matrix (the feature builder's) is
        converted :data:`CHUNK_ROWS` rows at a time, so the copy stays a few MB instead of
        doubling the tile's matrix."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D feature matrix; found shape {X.shape}")
        n_jobs = max(1, int(threads))
        out = np.empty(len(X), dtype=np.float64)
        for a in range(0, len(X), CHUNK_ROWS):
            rows = np.ascontiguousarray(X[a : a + CHUNK_ROWS], dtype=np.float64)
            out[a : a + len(rows)] = self._model.predict(rows, n_jobs=n_jobs)
        return out


def load_compiled(
    model_txt: str | os.PathLike,
    obj: str | os.PathLike | None = None,
) -> CompiledTrees:
    """The compiled trees of ``model_txt`` from ``obj`` (default: :func:`compiled_paths`).

    Raises ValueError when the record says the object was compiled from another model file
    (a stale object: rerun the compile job). On another CPU than the one it was compiled for,
    or with other lleaves/llvmlite/LightGBM versions, the trees are compiled again in a
    temporary folder for this process (logged)."""
    model_txt = Path(model_txt)
    obj = Path(obj) if obj is not None else compiled_paths(model_txt)[0]
    record_path = obj.with_suffix(".json")
    if not obj.is_file() or not record_path.is_file():
        raise FileNotFoundError(
            f"{obj}: no compiled trees (with {record_path.name}) for {model_txt}; compile them "
            f"(rule compile_so2, gridfuse.models.so2.compile_trees) or set {KEY}: lightgbm"
        )
    record = json.loads(record_path.read_text())
    if record.get("model_sha256") != _sha256(model_txt):
        raise ValueError(
            f"{obj} was compiled from another {model_txt.name} than {model_txt} (sha256 "
            "differs); delete it and compile again (rule compile_so2)"
        )
    here = {**_target(), **_versions()}
    differ = sorted(k for k in here if record.get(k) != here[k])
    if differ:
        keep = tempfile.TemporaryDirectory(prefix="gridfuse_lleaves_")
        t0 = time.process_time()
        model = _compile(model_txt, Path(keep.name) / obj.name)
        logger.warning(
            "%s was compiled for another CPU or toolchain (%s: %s there, %s here): compiled "
            "the %d trees again for this process in %.1f CPU s",
            obj,
            ", ".join(differ),
            ", ".join(str(record.get(k))[:40] for k in differ),
            ", ".join(str(here[k])[:40] for k in differ),
            model.num_trees(),
            time.process_time() - t0,
        )
        return CompiledTrees(model, {**record, **here}, keep=keep)
    model = _compile(model_txt, obj)
    logger.info("loaded %d compiled trees from %s", model.num_trees(), obj)
    return CompiledTrees(model, record)
