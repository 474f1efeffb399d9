"""Shared helpers for the benchmarks: timing, peak memory and the JSON result format.

Every benchmark writes ``results/benchmarks/<name>.json`` (ARCHITECTURE.md, "Benchmarks"):
a list of records ``{"measure", "unit", "ours", "reference", "reference_name", "ratio"}``
where ``ratio`` = ours / reference measured in the same run (higher is better for
throughputs; for times or memory pass ``higher_is_better=False`` and the ratio is
reference / ours, so above 1 still means "ours is better").  Records without a reference
(e.g. peak memory against a budget) carry the budget as ``reference``.

Usage::

    from _common import Bench, best_time

    bench = Bench("regrid")
    t = best_time(lambda: work(), repeat=3)
    bench.add("nearest 0.1deg", "Mcell/s", ours=cells / t / 1e6, reference=..., reference_name="GDAL")
    bench.write()
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

__all__ = ["Bench", "best_time", "peak_rss_mb", "PeakRSS", "RESULTS_DIR"]

RESULTS_DIR = Path(os.environ.get("GRIDFUSE_BENCH_DIR", ROOT / "results" / "benchmarks"))


def best_time(
    fn: Callable[[], object],
    repeat: int = 3,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best time (s) of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls.

    ``clock``: wall time by default; ``time.process_time`` gives the CPU time of the whole
    process (all threads), which a busy shared machine disturbs far less than the wall time.
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB), from ``getrusage``."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PeakRSS:
    """Context manager sampling the resident set size; ``.peak_mb`` is the maximum seen.

    ``getrusage`` only reports the process-lifetime peak, which earlier steps of a
    benchmark may already have set; this samples ``/proc/self/statm`` every
    ``interval`` seconds in a thread, so it measures the peak *inside* the block.
    ``.delta_mb`` is the peak minus the RSS on entry.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start_mb = self.peak_mb = self._rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.start_mb


class Bench:
    """Collects benchmark records and writes them as ``<RESULTS_DIR>/<name>.json``."""

    def __init__(self, name: str):
        self.name = name
        self.records: list[dict] = []

    def add(
        self,
        measure: str,
        unit: str,
        ours: float,
        reference: float | None = None,
        reference_name: str = "",
        *,
        higher_is_better: bool = True,
        **extra,
    ) -> dict:
        """Add one record; ``ratio`` is ours/reference (reference/ours if lower is better)."""
        if reference is None or not reference or not ours:
            ratio = None
        else:
            ratio = ours / reference if higher_is_better else reference / ours
        rec = {
            "measure": measure,
            "unit": unit,
            "ours": round(float(ours), 4),
            "reference": None if reference is None else round(float(reference), 4),
            "reference_name": reference_name,
            "ratio": None if ratio is None else round(float(ratio), 3),
            **extra,
        }
        self.records.append(rec)
        ref = "" if reference is None else f"  {reference_name}: {reference:10.2f}"
        rat = "" if ratio is None else f"  ratio: {ratio:6.2f}"
        print(f"{measure:<40s} {unit:<8s} ours: {ours:10.2f}{ref}{rat}", flush=True)
        return rec

    def write(self, directory: str | os.PathLike | None = None) -> Path:
        """Write the records (atomically) and return the path."""
        out = Path(directory) if directory is not None else RESULTS_DIR
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.records, indent=2) + "\n")
        os.replace(tmp, path)
        print(f"wrote {path}", flush=True)
        return path
