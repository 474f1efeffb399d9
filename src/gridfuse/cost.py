"""Cost model of the workflow's jobs: threads, CPU time, wall time, GPU time and peak memory.

Every rule's resource requests (``threads``, ``mem_mb``, ``runtime``) and ``gridfuse plan``
come from here, so a cluster request and the printed plan cannot disagree.  A job's cost is a
function of its size -- grid cells x days x sources x model sizes (stations, rows, trees,
folds, network multiply-accumulates) -- and of constants **measured** by ``make bench``
(``benchmarks/cost_constants.py``) and stored, with when and where they were measured, in
``cost_constants.json`` next to this module.

The model of one job (see :class:`Work`)::

    cpu_s   = fixed_s + sum(coef_t * units_t)        CPU seconds (user + system)
    wall_s  = fixed_s + (cpu_s - fixed_s) / threads   (the variable part runs in parallel)
    peak_mb = fixed_mb + sum(coef_m * mb_m)           peak resident memory (MB)

``units_t`` are the job's work units (e.g. millions of cell-days), ``mb_m`` the sizes (MB) of
the arrays it holds; ``coef`` are per-rule constants fitted on the benchmark records
(seconds, CPU time, max RSS) of real workflow runs, or composed from kernel rates (LightGBM
seconds per row x round x column, MPFM seconds per GMAC, ...) measured in the same benchmark.
Requests add margins: memory ``peak x MEM_MARGIN + MEM_SLACK_MB``, runtime ``wall x
RUNTIME_MARGIN`` (at least ``RUNTIME_FLOOR_MIN``, at most one day), both grown by half of
the first request per retry.

GPU rules (:data:`GPU_RULES`, the rules ``profiles/slurm`` gives a GPU) run their network
kernels (``k:mpfm_*`` terms) on the device when the job gets one (``GRIDFUSE_SLURM_GPUS``,
as the profile reads it, default 1; ``model.mpfm.device`` not ``cpu``) and the constants
hold the device's rates (section ``gpu``, converted by :func:`gpu_constants` from a device
record under ``benchmarks/devices/``)::

    gpu_s   = sum(gpu_coef_t * units_t)               the network kernels on the device
    wall_s  = fixed_s + host_var_s / threads + gpu_s
    cpu_s   = fixed_s + host_var_s + gpu_s            (one host core drives the device)

Otherwise the same terms are priced at the CPU rates.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .kinds import get_kind

logger = logging.getLogger(__name__)

__all__ = [
    "CONSTANTS_FILE",
    "GPU_RULES",
    "Constants",
    "Cost",
    "NoCostModel",
    "Product",
    "Work",
    "compile_pays",
    "estimate",
    "gpu_constants",
    "gpus_per_job",
    "lleaves_break_even_rows",
    "load_constants",
    "mpfm_macs_per_cell_day",
    "retry",
    "rule_key",
    "work",
]

CONSTANTS_FILE = Path(__file__).with_name("cost_constants.json")

# Request policy (not measurements): memory covers the modelled peak with a margin for what
# the model does not see (allocator fragmentation, peaks between samples); runtime has a wide
# margin because shared cluster nodes are slower than the benchmark machine at times.
MEM_MARGIN = 1.25
MEM_SLACK_MB = 500  # 300 left jobs 1-50 MB short: SLURM killed train_precip at 1,059 MB > 1,058 MB (test config) and fold jobs at 1,168-1,213 MB > 1,166 MB (rehearsal)
RUNTIME_MARGIN = 2.0
RUNTIME_FLOOR_MIN = 5
RUNTIME_CAP_MIN = 24 * 60
RETRY_GROWTH = 0.5
# Rules newer than the measured constants: priced with a similar rule's fixed cost and
# coefficients (marked "proxy") until `make bench` measures them.
PROXIES = {
    "cv_fold_precip": "cross_validate_precip",
}
# Rules whose jobs profiles/slurm gives a GPU (set-resources with `gpu:`); tests check that
# the two lists agree. Their network kernels run on the device when the job gets one.
GPU_RULES = ("train_precip", "predict_precip", "cross_validate_fold_precip")
# share of a job's measured peak a memory term's arrays must reach to be fitted (see
# fit_rule_constants)
MEM_SUPPORT = 0.25

# ------------------------------------------------------------------------ product facts
# Per-format facts (steps and files per day, native resolution, daily variables) come from
# the source-format registry (gridfuse.sources.registry).
# Stations in a real product's region (CMA gauges of Qinghai: 48; CNEMC sites of China:
# ~1,700 in 2018 growing to ~1,900), and in the national files a station reader parses before
# cropping to the region; synthetic products use their configured counts.
REGION_STATIONS = {"precip": 60, "so2": 2000}
NETWORK_STATIONS = {"cma_daily": 850, "cma_hourly": 2500, "cnemc": 2000}


def retry(value: float, attempt: int = 1, growth: float = RETRY_GROWTH) -> float:
    """``value`` grown for retry ``attempt`` (1 = first try): +``growth`` x value per retry."""
    return value * (1 + growth * (int(attempt) - 1))


# ------------------------------------------------------------------------ constants
class Constants:
    """The measured constants (``cost_constants.json``): per-rule fits and kernel rates.

    ``rules[key]`` holds ``fixed_s``, ``fixed_mb`` and the coefficients ``time`` (CPU seconds
    per unit) and ``mem`` (MB per MB of arrays) of the terms a rule's :class:`Work` names;
    ``kernels[name]`` holds rates measured on library kernels (``value`` with its unit).
    """

    def __init__(self, data: Mapping, source: str = "<dict>"):
        self.data = dict(data)
        self.source = source
        self.rules: dict = dict(self.data.get("rules", {}))
        self.kernels: dict = dict(self.data.get("kernels", {}))
        self.measured: dict = dict(self.data.get("measured", {}))
        self.gpu: dict = dict(self.data.get("gpu", {}))
        self.gpu_kernels: dict = dict(self.gpu.get("kernels", {}))

    def rule(self, key: str) -> Mapping:
        """Constants of a rule key (``downscale.era5_met`` falls back to ``downscale``).

        A job that only writes an absent marker (``<rule>.absent``) or copies a file
        (``truth``), without its own measurement, costs what the cheapest measured job costs.
        A rule newer than the constants is priced with the constants of the rule named in
        :data:`PROXIES` (its kernel terms are its own) until ``make bench`` measures it; a
        source or station format without its own measurement like the most memory-hungry
        measured format of its rule (both marked ``proxy``).
        """
        if key not in self.rules and PROXIES.get(key) in self.rules:
            return {**self.rules[PROXIES[key]], "proxy": PROXIES[key]}
        trivial = key.endswith(".absent") or key == "truth"
        if trivial and key not in self.rules and self.rules:
            return {
                "fixed_s": min(float(r.get("fixed_s", 0)) for r in self.rules.values()),
                "fixed_mb": min(float(r.get("fixed_mb", 0)) for r in self.rules.values()),
            }
        k = key
        while True:
            if k in self.rules:
                return self.rules[k]
            if "." not in k:
                break
            k = k.rsplit(".", 1)[0]
        # a format without its own measurement (e.g. ``ingest.geotiff_daily``): priced like
        # the most memory-hungry measured format of the same rule
        head = key.split(".", 1)[0]
        siblings = [r for r in self.rules if r.startswith(head + ".") and "absent" not in r]
        if "." in key and siblings:
            big = max(siblings, key=lambda r: float(self.rules[r].get("fixed_mb", 0.0)))
            return {**self.rules[big], "proxy": big}
        if "default" in self.rules:
            return self.rules["default"]
        raise KeyError(
            f"{self.source}: no cost constants for rule {key!r} (known: {sorted(self.rules)}); "
            "run `make bench` to measure them"
        )

    def kernel(self, name: str) -> float:
        try:
            return float(self.kernels[name]["value"])
        except KeyError:
            raise KeyError(
                f"{self.source}: no kernel constant {name!r} (known: {sorted(self.kernels)}); "
                "run `make bench` to measure it"
            ) from None

    def gpu_kernel(self, name: str, precision: str = "") -> float | None:
        """Device rate of kernel ``name`` (``<name>.<precision>`` first), or None."""
        for key in ([f"{name}.{precision}"] if precision else []) + [name]:
            if key in self.gpu_kernels:
                return float(self.gpu_kernels[key]["value"])
        return None


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> Constants:
    with open(path) as f:
        return Constants(json.load(f), source=path)


def load_constants(path: str | os.PathLike | None = None) -> Constants:
    """The constants file (default: ``GRIDFUSE_COST_CONSTANTS`` or the packaged one)."""
    p = Path(path or os.environ.get("GRIDFUSE_COST_CONSTANTS") or CONSTANTS_FILE)
    if not p.is_file():
        raise FileNotFoundError(f"cost constants {p} not found; run `make bench` to write it")
    return _load(str(p), p.stat().st_mtime)


# ------------------------------------------------------------------------ work and cost
@dataclass(frozen=True)
class Work:
    """What one job does: its threads and its size in the units its cost scales with.

    ``time`` maps a term to work units (CPU seconds = coefficient x units), ``mem`` a term to
    the MB of arrays it holds (peak MB = coefficient x MB).  A term's coefficient is the
    rule's own fitted constant, or a kernel rate (term ``k:<kernel>``), or another rule's
    coefficient (``r:<rule>:<term>``).
    """

    key: str
    threads: int = 1
    time: Mapping[str, float] = field(default_factory=dict)
    mem: Mapping[str, float] = field(default_factory=dict)
    gpu: bool = False
    precision: str = ""


@dataclass(frozen=True)
class Cost:
    """Estimated cost of one job, and the requests derived from it."""

    rule: str
    threads: int
    cpu_s: float
    wall_s: float
    peak_mb: float
    gpu: bool = False
    fixed_s: float = 0.0
    proxy: str = ""
    gpu_s: float = 0.0

    def mem_mb(self, attempt: int = 1) -> int:
        """Memory request (MB) at ``attempt``: the peak with margin and slack."""
        return int(math.ceil(retry(self.peak_mb * MEM_MARGIN + MEM_SLACK_MB, attempt)))

    def wall_at(self, threads: int | None = None) -> float:
        """Wall seconds when the job runs with ``threads`` (default: its own threads)."""
        t = max(1, int(threads or self.threads))
        return self.fixed_s + (self.cpu_s - self.fixed_s - self.gpu_s) / t + self.gpu_s

    def runtime_min(self, attempt: int = 1, threads: int | None = None) -> int:
        """Runtime request (min) at ``attempt`` with ``threads`` (default: the job's own; a
        scheduler may cap them), at least the floor, at most one day."""
        m = retry(max(RUNTIME_FLOOR_MIN, self.wall_at(threads) * RUNTIME_MARGIN / 60), attempt)
        return int(min(RUNTIME_CAP_MIN, math.ceil(m)))

    @property
    def cpu_hours(self) -> float:
        return self.cpu_s / 3600

    @property
    def wall_hours(self) -> float:
        return self.wall_s / 3600

    @property
    def gpu_hours(self) -> float:
        """GPU-hours the job holds (its wall time on one GPU; 0 for a CPU job)."""
        return self.wall_s / 3600 if self.gpu else 0.0


def _coef(k: Constants, own: Mapping, term: str, part: str = "time") -> float:
    """Coefficient of a term: the rule's own, a kernel rate (``k:<name>``) or another rule's
    (``r:<rule>:<term>``, from that rule's ``part``: ``time`` or ``mem``)."""
    if term.startswith("k:"):
        return k.kernel(term[2:])
    if term.startswith("r:"):
        _, rule, t = term.split(":", 2)
        return float(k.rule(rule).get(part, {}).get(t, 0.0))
    return float(own.get(term, 0.0))


def price(w: Work, k: Constants, rule: str | None = None) -> Cost:
    """Cost of :class:`Work` ``w`` with constants ``k``.

    A GPU job (``w.gpu``) prices the kernel terms the constants have a device rate for on
    the device; without device rates in ``k`` it is priced on the CPU (``Cost.gpu`` False).
    """
    c = k.rule(w.key)
    tcoef, mcoef = c.get("time", {}), c.get("mem", {})
    gpu = bool(w.gpu and k.gpu_kernels)
    var_s = gpu_s = 0.0
    for t, u in w.time.items():
        rate = k.gpu_kernel(t[2:], w.precision) if gpu and t.startswith("k:") else None
        if rate is None:
            var_s += _coef(k, tcoef, t) * u
        else:
            gpu_s += rate * u
    fixed_s = float(c.get("fixed_s", 0.0))
    peak = float(c.get("fixed_mb", 0.0)) + sum(
        _coef(k, mcoef, m, "mem") * mb for m, mb in w.mem.items()
    )
    threads = max(1, int(w.threads))
    return Cost(
        rule=rule or w.key,
        threads=threads,
        cpu_s=fixed_s + var_s + gpu_s,
        wall_s=fixed_s + var_s / threads + gpu_s,
        peak_mb=peak,
        gpu=gpu,
        fixed_s=fixed_s,
        proxy=str(c.get("proxy", "")),
        gpu_s=gpu_s,
    )


def gpus_per_job() -> int:
    """GPUs a GPU rule's job gets: ``GRIDFUSE_SLURM_GPUS`` as ``profiles/slurm`` reads it
    (default 1; 0 runs the GPU rules on CPUs)."""
    v = os.environ.get("GRIDFUSE_SLURM_GPUS", "1").strip() or "0"
    try:
        return max(0, int(v))
    except ValueError:
        raise ValueError(f"GRIDFUSE_SLURM_GPUS must be an integer, got {v!r}") from None


def gpu_constants(device: Mapping, window: int = 7) -> dict:
    """Device rates (``gpu`` section of the constants) from a device record.

    Parameters
    ----------
    device : mapping
        A file of ``benchmarks/devices/``: ``device``, ``measured`` (when, where, command)
        and ``records``, the records of ``benchmarks/mpfm_predict.py`` run on that device.
    window : int
        Days per sample of the benchmark's network (its ``window``).

    Returns
    -------
    dict
        ``device``, ``measured`` and ``kernels``: ``mpfm_predict_s_per_gmac.<precision>``
        (device seconds per GMAC of :func:`mpfm_macs_per_cell_day` x tile halo, from the
        grid inference rate of each precision) and ``mpfm_train_s_per_gmac`` (from the
        training rate, in the training count of the cost model: 3 forward passes per fit
        sample plus the validation stations' forward passes).  The benchmark's network is
        the preset MPFM on 8 channels (5 sources + 3 static), 15 x 15 training patches with
        32 fit and 8 validation stations (``benchmarks/mpfm_predict.py``).
    """
    recs = {r["measure"]: r for r in device.get("records", [])}
    macs, radius = _macs("mpfm", 8, json.dumps({"window": int(window)}, sort_keys=True))
    kernels = {}
    for prec in ("fp32", "tf32", "bf16"):
        r = recs.get(f"cuda cell_days_per_s {prec}")
        if r is None:
            continue
        tile = int(r["tile"])
        halo = ((tile + 2 * radius) / tile) ** 2
        kernels[f"mpfm_predict_s_per_gmac.{prec}"] = {
            "value": 1e9 / (float(r["ours"]) * macs * halo),
            "unit": "device s per GMAC (cost.mpfm_macs_per_cell_day x tile halo)",
            "how": f"predict_grid {prec} on {r['grid'][0]}x{r['grid'][1]} cells x {r['days']} "
            f"days, tile {tile}: {float(r['ours']):.4g} cell-days/s, peak "
            f"{r.get('peak_gpu_mb')} MB, utilisation {r.get('gpu_util_mean')} %, relative "
            f"RMS to the CPU {r.get('rel_rms_vs_cpu'):.2g}",
        }
    r = recs.get("cuda train samples per s")
    if r is not None:
        patch, fit, val = 15, 32, 8
        per_sample = macs * patch * patch * (3 + val / fit)
        kernels["mpfm_train_s_per_gmac"] = {
            "value": 1e9 / (float(r["ours"]) * per_sample),
            "unit": "device s per GMAC (the cost model's training count)",
            "how": f"train_fusion: {float(r['ours']):.4g} fit samples/s ({patch}x{patch} "
            f"patches, {fit} fit + {val} validation stations)",
        }
    if not kernels:
        raise ValueError(
            f"device record {device.get('device', '?')!r} has no CUDA inference or training "
            "rate (records 'cuda cell_days_per_s <precision>', 'cuda train samples per s')"
        )
    return {
        "device": device.get("device", ""),
        "description": device.get("description", ""),
        "measured": dict(device.get("measured", {})),
        "kernels": kernels,
    }


# ------------------------------------------------------------------------ product sizes
def _date(s) -> dt.date:
    return s if isinstance(s, dt.date) else dt.date.fromisoformat(str(s))


class Product:
    """Sizes of one product from its validated config (defaults filled).

    Parameters
    ----------
    cfg : mapping
        The product's config section.
    """

    def __init__(
        self,
        cfg: Mapping,
        covers: Callable[[str, int], bool] | None = None,
        threads: int | None = None,
    ):
        self.cfg = cfg
        self._covers = covers
        self._threads = threads
        self.kind = cfg["kind"]
        self.spec = get_kind(self.kind)  # the kind's facts (static layers, model family)
        g = cfg["grid"]
        self.res = float(g["res"])
        self.nlat = int(round((float(g["north"]) - float(g["south"])) / self.res))
        self.nlon = int(round((float(g["east"]) - float(g["west"])) / self.res))
        self.cells = self.nlat * self.nlon
        self.start = _date(cfg["period"]["start"])
        self.end = _date(cfg["period"]["end"])
        self.synthetic = bool(cfg.get("synthetic", {}).get("enabled", False))
        self.sources = {s: c["format"] for s, c in cfg.get("sources", {}).items()}

    def threads(self, planned: int) -> int:
        """A job's threads: ``planned`` (the cost model's choice), or the threads the job
        really ran with when it is a measured one (a benchmark record's ``threads``: the
        fit must price the record's memory per thread at the threads it had)."""
        return int(self._threads or planned)

    def covers(self, source: str, year) -> bool:
        """Whether ``source`` has data in ``year`` (the workflow's coverage when given)."""
        if self._covers is not None:
            return bool(self._covers(source, int(year)))
        c = self.cfg["sources"][source]
        return _fmt(c["format"]).covers_year(
            int(year),
            version=c.get("version", ""),
            first_year=c.get("first_year"),
            last_year=c.get("last_year"),
        )

    # time
    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def all_years(self) -> list[int]:
        return list(range(self.start.year, self.end.year + 1))

    def days_in_year(self, year) -> int:
        y = int(year)
        first, last = max(self.start, dt.date(y, 1, 1)), min(self.end, dt.date(y, 12, 31))
        return max(1, (last - first).days + 1)

    def set_days(self, sources: Sequence[str], margin: int = 0) -> int:
        """Days a job of the source-availability set ``sources`` reads: from the first to
        the last day of the years whose sources (:meth:`covers`, in config order) are
        ``sources``, widened by ``margin`` days either side within the period (as
        :func:`gridfuse.samples.window_span` cuts the patches)."""
        years = [
            y
            for y in self.all_years
            if [s for s in self.sources if self.covers(s, y)] == list(sources)
        ]
        if not years:
            raise ValueError(
                f"no year of {self.start}..{self.end} has exactly the sources {sources}"
            )
        first = max(self.start, dt.date(years[0], 1, 1) - dt.timedelta(days=margin))
        last = min(self.end, dt.date(years[-1], 12, 31) + dt.timedelta(days=margin))
        return (last - first).days + 1

    # stations
    @property
    def stations(self) -> int:
        """Stations of the product's region (the synthetic count for a demo)."""
        syn = self.cfg.get("synthetic", {})
        if self.synthetic:
            if self.kind == "so2":
                return int(syn.get("so2", {}).get("n_stations", 60))
            return int(syn.get("n_stations", 40))
        return REGION_STATIONS[self.kind]

    @property
    def station_days(self) -> int:
        return self.stations * self.days

    @property
    def training_stations(self) -> int:
        """Stations of the region less the evaluation stations held out (as the station
        ingest holds them out: :func:`gridfuse.stations.roles.evaluation_count`)."""
        from .stations.roles import evaluation_count

        ev = self.cfg.get("stations", {}).get("evaluation", {})
        held = evaluation_count(self.stations, ids=ev.get("ids") or (), count=ev.get("count", 0))
        return max(1, self.stations - held)

    @property
    def network_station_days(self) -> int:
        """Station-days in the files the station reader parses (real: the whole network's)."""
        if self.synthetic:
            return self.station_days
        fmt = self.cfg["stations"]["format"]
        return NETWORK_STATIONS.get(fmt, 2500) * self.days

    # grids of the sources
    def native_cells(self, fmt: str, source: str | None = None) -> int:
        """Cells of a source's native grid over the product region plus its margin."""
        g = self.cfg["grid"]
        margin = float(self.cfg["sources"].get(source, {}).get("margin", 0.5)) if source else 0.5
        r = _fmt(fmt).native_res
        if r is None and source is not None:
            r = self.cfg["sources"][source].get("grid_res")
        r = float(r or 0.1)
        ny = (float(g["north"]) - float(g["south"]) + 2 * margin) / r
        nx = (float(g["east"]) - float(g["west"]) + 2 * margin) / r
        return max(1, int(math.ceil(ny) * math.ceil(nx)))

    def model(self, *keys, default=None):
        c = self.cfg.get("model", {})
        for k in keys:
            if not isinstance(c, Mapping) or k not in c:
                return default
            c = c[k]
        return c


def _fmt(name: str):
    from .sources.registry import get_format

    return get_format(name)


def files_per_year(fmt: str, days: int) -> int:
    """Files a source format has in ``days`` days (the registry's files per day)."""
    return _fmt(fmt).files_in(days)


def steps_per_day(fmt: str) -> float:
    """Native time steps per day of a format (the registry's)."""
    return float(_fmt(fmt).steps_per_day)


def format_variables(fmt: str) -> int:
    """Daily variables a format yields (what downscale regrids)."""
    return len(_fmt(fmt).outputs)


def threads_for(work: float, per_thread: float, lo: int = 1, hi: int = 16) -> int:
    """Threads for ``work`` units when one thread should get about ``per_thread`` of them."""
    return int(min(hi, max(lo, work // per_thread)))


# ------------------------------------------------------------------------ network sizes
@functools.lru_cache(maxsize=64)
def _macs(net: str, in_channels: int, sizes_json: str) -> tuple[float, int]:
    import torch

    from .models.mpfm import MPFM, MPFMConfig

    sizes = json.loads(sizes_json)
    window = int(sizes.get("window", 7))
    m = MPFM(MPFMConfig.variant(net, in_channels, **sizes))
    macs = 0.0
    for mod in m.modules():
        if isinstance(mod, torch.nn.Conv3d):  # Conv3d blocks and the attention projections
            macs += mod.weight.numel() * window
        elif isinstance(mod, torch.nn.Conv2d):
            if mod.weight.shape[-1] > 1:  # ConvLSTM gates: each direction runs to the centre
                macs += mod.weight.numel() * (window // 2 + 1)
            else:  # the 1x1 head
                macs += mod.weight.numel()
    if m.cfg.use_attention:  # scores and weighted sums: 2 x T^2 x C per cell
        macs += 2 * window * window * m.cfg.conv_channels[-1]
    return macs, int(m.radius)


def mpfm_macs_per_cell_day(
    mpfm_cfg: Mapping, in_channels: int, window: int, net: str = "mpfm"
) -> tuple[float, int]:
    """Multiply-accumulates per output cell-day of a fusion network, and its radius.

    Counted from the network's layers: each Conv3d (and attention projection) runs at every
    one of the ``window`` days, the ConvLSTM gate convolutions at each step of both
    directions up to the centre day (``window // 2 + 1`` each), the 1x1 head once.
    """
    from .models.train import net_sizes

    sizes = net_sizes(dict(mpfm_cfg), window)
    return _macs(net, int(in_channels), json.dumps(sizes, sort_keys=True))


# ------------------------------------------------------------------------ per-rule work
# Each function: (product, wildcards) -> Work.  Units: "m" = millions, "g" = billions.
WorkFn = Callable[[Product, Mapping[str, str]], Work]
RULES: dict[str, WorkFn] = {}


def _rule(*names: str):
    """Register a work function under rule names (renamed rules keep their old name too, so
    earlier runs' benchmark files still fit; the constants keep the key of their Work)."""

    def deco(fn: WorkFn) -> WorkFn:
        for n in names:
            RULES[n] = fn
        return fn

    return deco


def _mb(n_values: float, itemsize: int = 4) -> float:
    return n_values * itemsize / 1e6


@_rule("synthesize_precip_demo")
def _synth_precip(p: Product, wc) -> Work:
    n = len(p.sources) + 1
    return Work(
        "synthesize_precip_demo",
        threads=2,
        time={"cell_days_m": p.cells * p.days * n / 1e6},
        mem={"block_mb": _mb(p.cells * min(p.days, 32) * n)},
    )


@_rule("synthesize_so2_demo")
def _synth_so2(p: Product, wc) -> Work:
    """The OSSE world (terrain, population, roads, land cover, NDVI and the distances the
    station network is drawn from: float64 grids, one pass per city), then the truth's days.
    ``world_mb``: about 16 float64 grids are alive at the peak (the layers and their
    temporaries; 3,309 MB on the China grid), so the coefficient fits near 1."""
    cities = int(p.cfg.get("synthetic", {}).get("so2", {}).get("n_cities", 4))
    return Work(
        "synthesize_so2_demo",
        time={"cells_m": p.cells * (1 + cities) / 1e6, "cell_days_m": p.cells * p.days / 1e6},
        mem={"world_mb": _mb(16 * p.cells, 8), "period_mb": _mb(p.cells * p.days)},
    )


@_rule("truth_precip", "truth_so2")
def _truth(p: Product, wc) -> Work:
    return Work("truth")


@_rule("ingest_stations")
def _stations(p: Product, wc) -> Work:
    fmt = p.cfg["stations"]["format"]
    n = p.network_station_days
    # the parsed rows: at least six 8-byte columns per station-day (id, date, values, flags)
    return Work(
        f"ingest_stations.{fmt}", time={"station_days_m": n / 1e6}, mem={"rows_mb": n * 48 / 1e6}
    )


@_rule("build_static")
def _static(p: Product, wc) -> Work:
    layers = len(p.spec.static_layers)
    return Work(
        "build_static",
        time={"cell_layers_m": p.cells * layers / 1e6},
        mem={"layers_mb": _mb(p.cells * (layers + 2))},
    )


def _ingest_precip(p: Product, source: str, year) -> Work:
    fmt = p.sources[source]
    if not p.covers(source, year):
        return Work("ingest.absent")
    days = p.days_in_year(year)
    files = files_per_year(fmt, days)
    cells = p.native_cells(fmt, source)
    steps = steps_per_day(fmt) * days
    threads = p.threads(threads_for(files, 4000, lo=2, hi=8))
    # files of a month (ERA5) hold a month of steps; the step readers hold 8 days
    block = (31 if _fmt(fmt).files_per_day < 1 else 8) * steps_per_day(fmt)
    time = {"files": files, "cell_steps_m": cells * steps / 1e6}
    if not p.synthetic and _fmt(fmt).global_files:
        # real archives hold global files: each read decompresses far more than the region
        time[f"k:ingest_s_per_file.{fmt}"] = files
    return Work(
        f"ingest.{fmt}",
        threads=threads,
        time=time,
        mem={"arrays_mb": _mb(cells * (days + block)), "workers": threads},
    )


@_rule("ingest_tropomi")
def _ingest_tropomi(p: Product, wc) -> Work:
    source = wc["source"]  # the ingest_<source> rule of a tropomi_l2 source
    if not p.covers(source, wc["year"]):
        return Work("ingest.absent")
    days = p.days_in_year(wc["year"])
    cells = p.native_cells("tropomi_l2", source)
    return Work(
        "ingest_tropomi",
        time={"files": files_per_year("tropomi_l2", days), "cell_days_m": cells * days / 1e6},
        mem={"arrays_mb": _mb(cells * days * 2)},
    )


@_rule("ingest_era5_met")
def _ingest_era5_met(p: Product, wc) -> Work:
    source = wc["source"]  # the ingest_<source> rule of an era5_met source
    if not p.covers(source, wc["year"]):
        return Work("ingest.absent")
    days = p.days_in_year(wc["year"])
    cells = p.native_cells("era5_met", source)
    nvar = format_variables("era5_met")
    return Work(
        "ingest_era5_met",
        time={"cell_steps_m": cells * days * 24 * nvar / 1e6},
        mem={"month_mb": _mb(cells * 31 * 24 * nvar), "year_mb": _mb(cells * days * nvar)},
    )


def _source_vars(p: Product, source: str) -> int:
    return format_variables(p.sources[source])


@_rule("downscale", "downscale_temporary")
def _downscale(p: Product, wc) -> Work:
    if not p.covers(wc["source"], wc["year"]):
        return Work("downscale.absent")
    nvar = _source_vars(p, wc["source"])
    days = p.days_in_year(wc["year"])
    block = min(days, int(p.cfg["downscale"]["time_block"]))
    threads = p.threads(2)
    return Work(
        "downscale",
        threads=threads,
        time={"cell_days_m": p.cells * days * nvar / 1e6},
        # dask regrids one variable's block of time_block days per task, one per thread
        # (the China rehearsal's 2-day blocks: ERA5 meteorology 937 MB, TROPOMI 536 MB)
        mem={"block_mb": _mb(p.cells * block * threads)},
    )


@_rule("compare_interpolation_precip", "compare_interpolation")
def _compare(p: Product, wc) -> Work:
    native = sum(p.native_cells(f, s) for s, f in p.sources.items()) * p.days
    methods = len(p.cfg["downscale"]["compare"])
    return Work(
        "compare_interpolation",
        time={"native_cell_days_m": native * methods / 1e6},
        mem={"native_mb": _mb(max(p.native_cells(f, s) for s, f in p.sources.items()) * 366)},
    )


def _channels(p: Product, n_sources: int | None = None) -> int:
    return (len(p.sources) if n_sources is None else n_sources) + 3


def _patches_mb(p: Product, days: int | None = None) -> float:
    """``patches.nc``'s ``x`` in memory: every channel of ``days`` days (default: all)."""
    patch = int(p.cfg["samples"]["patch"])
    return _mb(p.stations * (p.days if days is None else days) * patch * patch * _channels(p))


@_rule("samples_precip", "build_samples")
def _samples(p: Product, wc) -> Work:
    block = int(p.cfg["downscale"]["time_block"])
    return Work(
        "build_samples",
        time={"cell_days_m": p.cells * p.days * len(p.sources) / 1e6},
        mem={"patches_mb": _patches_mb(p), "block_mb": _mb(p.cells * block * _channels(p))},
    )


def _mpfm(p: Product) -> Mapping:
    return p.cfg["model"]["mpfm"]


def _gpu_job(p: Product, rule: str) -> bool:
    """Whether a job of ``rule`` runs its network on a GPU: a GPU rule whose job gets one
    (:func:`gpus_per_job`) with a device setting other than ``cpu``."""
    return (
        rule in GPU_RULES
        and gpus_per_job() > 0
        and str(_mpfm(p).get("device", "auto")).lower() != "cpu"
    )


# networks that are another one with extra input channels: mpfm_g = MPFM + 2 gauge channels
NET_CHANNELS = {"mpfm_g": ("mpfm", 2)}


def _train_gmac(p: Product, net: str, n_sources: int, share: float = 1.0) -> float:
    """GMAC of training one network (all seeds / members) on ``share`` of the training
    station-days: epochs x samples x per-sample MACs x 3."""
    m = _mpfm(p)
    window = int(p.cfg["samples"]["window_days"])
    patch = int(p.cfg["samples"]["patch"])
    variant, extra = NET_CHANNELS.get(net, (net, 0))
    macs, _ = mpfm_macs_per_cell_day(m, _channels(p, n_sources) + extra, window, variant)
    fit_share = 1 - float(m.get("val_fraction", 0.2))
    samples = int(m.get("samples_per_epoch", 0)) or int(p.station_days * fit_share * share)
    # every layer runs over (up to) the whole patch; forward + backward ~ 3 forward passes;
    # every epoch also predicts the validation stations' days
    per_sample = macs * patch * patch
    per_epoch = samples * per_sample * 3 + p.station_days * share * (1 - fit_share) * per_sample
    return int(m["epochs"]) * len(m.get("seeds", [0])) * per_epoch / 1e9


def _train_act_mb(p: Product, n_sources: int | None = None) -> float:
    """Activations (MB) one training batch of the fusion network keeps for the backward
    pass: every layer's output over the ``window`` days x ``patch`` x ``patch`` cells of a sample --
    the input, the Conv3d blocks, the ConvLSTM's 4 gates, cell and hidden state per
    direction and step, the head -- times ``batch_size``, forward values and their
    gradients (x 2), float32.  The test config's networks keep ~116 MB, the Qinghai
    preset's ~426 MB (the rehearsal's fold jobs peaked 150-200 MB above a train job of the
    test config)."""
    from .models.mpfm import MPFMConfig
    from .models.train import TrainConfig

    m = _mpfm(p)
    d = MPFMConfig(in_channels=1)
    conv = sum(m.get("conv_channels", d.conv_channels))
    hidden = sum(m.get("hidden", d.hidden))
    head = int(m.get("head_hidden", d.head_hidden))
    batch = int(m.get("batch_size", TrainConfig().batch_size))
    window = int(p.cfg["samples"]["window_days"])
    patch = int(p.cfg["samples"]["patch"])
    chans = _channels(p, n_sources) + conv + 2 * 6 * hidden + head
    return _mb(batch * window * patch * patch * chans * 2)


@_rule("train_precip", "train_mpfm")
def _train(p: Product, wc) -> Work:
    n_src = len(wc["set"].split("-")) if "set" in wc else len(p.sources)
    threads = threads_for(p.station_days, 50_000, lo=2, hi=8)
    return Work(
        "train_mpfm",
        threads=threads,
        time={"k:mpfm_train_s_per_gmac": _train_gmac(p, wc.get("net", "mpfm"), n_src)},
        mem={"patches_mb": _patches_mb(p), "nets_mb": _train_act_mb(p, n_src)},
        gpu=_gpu_job(p, "train_precip"),
    )


@_rule("predict_precip")
def _predict(p: Product, wc) -> Work:
    from .gauge_fusion import product_memory_mb
    from .predict import CPU_BUDGET_MB, predict_memory_mb

    m = _mpfm(p)
    year = wc["year"]
    n_src = sum(1 for s in p.sources if p.covers(s, year))  # the year's availability set
    window = int(p.cfg["samples"]["window_days"])
    # the product's network is mpfm or mpfm_g (chosen by select_precip): priced as mpfm_g,
    # the larger, with its gauge channels; a residual correction is in the per-cell-day term
    chans = _channels(p, n_src) + NET_CHANNELS["mpfm_g"][1]
    macs, radius = mpfm_macs_per_cell_day(m, chans, window)
    tile = int(m["predict_tile"])
    halo = ((tile + 2 * radius) / tile) ** 2
    cell_days = p.cells * p.days_in_year(year)
    seeds = len(m.get("seeds", [0]))
    # the inference engine's own peak model: raw blocks (one prefetched), the standardized
    # and padded block, the activation budget, the output
    engine = predict_memory_mb(
        p.nlat,
        p.nlon,
        _channels(p, n_src),
        time_block=int(m["predict_days"]),
        window=window,
        radius=radius,
        budget_mb=float(m.get("predict_mem_mb") or CPU_BUDGET_MB),
    )
    # and the gauge steps of the product (gauge fields, residual correction, blend)
    engine += product_memory_mb(p.cells, p.stations, int(m["predict_days"]))
    return Work(
        "predict_precip",
        threads=2,
        time={
            "k:mpfm_predict_s_per_gmac": cell_days * macs * halo * seeds / 1e9,
            "cell_days_m": cell_days / 1e6,
        },
        mem={"engine_mb": engine},
        gpu=_gpu_job(p, "predict_precip"),
        precision=str(m.get("predict_precision", "fp32")),
    )


@_rule("score_grid_precip")
def _score_grid(p: Product, wc) -> Work:
    n = len(p.sources) + 2
    days = p.days_in_year(wc["year"])
    return Work(
        "score_grid_precip",
        time={"cell_days_m": p.cells * days * n / 1e6},
        mem={"year_mb": _mb(p.cells * days * n)},
    )


def _select_gmac(p: Product, n_sources: int, share: float = 1.0, days: int | None = None) -> float:
    """GMAC of choosing the product's variant (:func:`gridfuse.gauge_fusion.build_product`)
    on ``share`` of the training stations over ``days`` days (default: the period): every
    member of ``mpfm`` and of ``mpfm_g`` predicts every station-day, then the chosen network's
    ensemble (priced as ``mpfm_g``, which also runs ``mpfm`` for its fallback days) predicts
    them again -- 4 passes per member, each on the receptive-field crop of the patch
    (``predict_center``)."""
    m = _mpfm(p)
    window = int(p.cfg["samples"]["window_days"])
    macs, radius = mpfm_macs_per_cell_day(m, _channels(p, n_sources), window)
    macs_g, _ = mpfm_macs_per_cell_day(
        m, _channels(p, n_sources) + NET_CHANNELS["mpfm_g"][1], window
    )
    crop = (2 * radius + 1) ** 2
    members = len(m.get("seeds", [0]))
    station_days = p.training_stations * (p.days if days is None else days)
    return station_days * share * crop * members * 2 * (macs + macs_g) / 1e9


@_rule("select_precip")
def _select_precip(p: Product, wc) -> Work:
    """The product variant of a set: the networks' passes over the training station-days
    (:func:`_select_gmac`; they were 95 % of the demo job's time, the gauge fields and the
    variants' interpolations the rest), priced at the rule's own CPU seconds per GMAC fitted on
    measured select jobs (``make bench``; the 1-thread station-path kernel under-priced the
    2-thread jobs), and its memory as the patches the job loads and copies.  The job reads
    only its set's days and the ``window_days // 2`` either side that their windows reach
    (:func:`gridfuse.gauge_fusion.build_set_product`; without a set: the period)."""
    srcs = wc["set"].split("-") if "set" in wc else list(p.sources)
    margin = int(p.cfg["samples"]["window_days"]) // 2
    days = p.set_days(srcs, margin) if "set" in wc else p.days
    return Work(
        "select_precip",
        threads=threads_for(p.stations * days, 50_000, lo=2, hi=8),
        time={"select_gmac": _select_gmac(p, len(srcs), days=days)},
        # the loaded patches and four copies made for the networks: the training stations',
        # with the two gauge channels, standardized, padded in time (predict_stations)
        mem={"patches_mb": 5 * _patches_mb(p, days)},
    )


def _refit_nets(p: Product) -> list[str]:
    """Networks retrained in every site_cv fold (as the workflow's pm_refit)."""
    cv = p.cfg["cv"]
    nets = list(cv.get("site_cv_deep", []))
    if cv.get("site_cv_product", False):
        nets += [n for n in ("mpfm", "mpfm_g") if n not in nets]
    return nets


def _baselines(p: Product) -> list[str]:
    nets = ("mpfm", "mpfm_g", "cnn3d", "biconvlstm")
    return [m for m in p.cfg["model"]["baselines"]["models"] if m not in nets]


@_rule("cross_validate_fold_precip", "cv_fold_precip")
def _cv_fold_precip(p: Product, wc) -> Work:
    """One site_cv fold: the baselines and the refitted networks on the fold's fit gauges."""
    k = int(p.cfg["cv"]["n_splits"])
    share = (k - 1) / k
    time = {"station_fits_m": p.station_days * share * len(_baselines(p)) / 1e6}
    refit = _refit_nets(p)
    if refit:
        time["k:mpfm_train_s_per_gmac"] = sum(
            _train_gmac(p, n, len(p.sources), share) for n in refit
        )
    if p.cfg["cv"].get("site_cv_product", False):  # the product's choice redone in the fold
        time["r:select_precip:select_gmac"] = _select_gmac(p, len(p.sources), share)
    return Work(
        "cv_fold_precip",
        threads=threads_for(p.station_days, 50_000, lo=2, hi=8),
        time=time,
        # the networks are refitted one after the other: one training batch at a time
        mem={"patches_mb": _patches_mb(p), "nets_mb": _train_act_mb(p) if refit else 0.0},
        gpu=bool(refit) and _gpu_job(p, "cross_validate_fold_precip"),
    )


@_rule("cross_validate_precip")
def _cv_precip(p: Product, wc) -> Work:
    """scores.csv: the fold statistics gathered; holdout scores of every model from the
    patches and the product files (and an OSSE's truth files), of which only the chunks
    around the stations are read (:func:`gridfuse.io.values_at_cells`)."""
    files = 2 if p.synthetic and "osse_stations" in p.cfg["cv"].get("schemes", []) else 1
    return Work(
        "cross_validate_precip",
        threads=threads_for(p.station_days, 50_000, lo=2, hi=8),
        time={
            "station_days_m": p.station_days * (len(_baselines(p)) + 1) / 1e6,
            "k:product_read_s_per_cell_day": p.cells * p.days * files,
        },
        # values_at_cells holds one slab: 32 days of a 512 x 512 storage chunk
        mem={"patches_mb": _patches_mb(p), "slab_mb": _mb(32 * min(p.cells, 512 * 512))},
    )


@_rule("export_geotiff_precip")
def _export(p: Product, wc) -> Work:
    days = p.days_in_year(wc["year"])
    return Work(
        "export_geotiff_precip",
        time={"cell_days_m": p.cells * days / 1e6},
        mem={"day_mb": _mb(p.cells)},
    )


# bytes a station-day takes in a pandas table of the report scripts (the observations read,
# the (model, station, date, obs, pred) pairs and the copies their merge makes): 75-117 B
# measured (max RSS of 0.75 M observation rows and 0.9-2.2 M pairs, 2026-11-28, h8)
_ROW_BYTES = 120
# days values_at_cells reads at a time, and the copies of its slab (time_block days of one
# 512 x 512 storage chunk) the job's RSS shows: the array netCDF4 returns, its mask, the
# NaN-filled float32 copy and what the allocator keeps of them (max RSS 5.7 MB per slab MB
# over ~100 MB of HDF5 chunk cache, time_block 8 and 32 on 2000 x 3000 cells; tracemalloc
# sees 2.8, 2026-11-28, h8)
_SLAB_DAYS, _SLAB_COPIES = 32, 6


def _report_fields(p: Product) -> int:
    """Fields the report maps draw: the product, the truth (demo) and, where the kind
    shows them, each source (as ``rp_fields``)."""
    return 1 + int(p.synthetic) + (len(p.sources) if p.spec.sources_in_reports else 0)


@_rule("report_maps")
def _report_maps(p: Product, wc) -> Work:
    """Maps of the chosen days: configured ``report.days`` are looked up on the time axes,
    else the days are chosen from the product's domain means over its first year, taken one
    day at a time (:func:`gridfuse.plots.choose_days`); then only the chosen days of every
    field are read.  It holds those days' panels at full resolution (and a concatenation's
    copy of one field's), one day for the means (the day and the two copies its NaN-aware
    mean makes), a day's panels twice for the colour scale (their 99th percentile) and the
    observations table; map panels are drawn as block means of at most 1,000 cells a side
    (a strip of ~4 M cells at a time, in the fixed part)."""
    days = p.cfg["report"]["days"]
    n_days = len(days) or int(p.cfg["report"]["n_days"])
    fields = _report_fields(p)
    time = {"cells_m": p.cells * n_days * fields / 1e6}
    mem = {
        "maps_mb": _mb(p.cells * n_days * (fields + 1)),
        "scale_mb": _mb(2 * p.cells * fields),
        "obs_mb": p.station_days * _ROW_BYTES / 1e6,
    }
    if not days:  # the means of the first year's days, read one day at a time
        time["k:product_read_s_per_cell_day"] = p.cells * p.days_in_year(p.start.year)
        mem["day_mb"] = _mb(3 * p.cells)
    return Work("report_maps", time=time, mem=mem)


@_rule("report_scatter")
def _report_scatter(p: Product, wc) -> Work:
    """Predicted against observed at held-out stations.  Out-of-fold (SO2): the chosen
    scheme's rows of the folds' predictions table.  Evaluation stations (precip): the product's and each source's files
    over the period, of which only the storage chunks holding the stations' cells are read,
    32 days at a time (:func:`gridfuse.plots.station_pairs_from_files`); it holds the
    observations table, the evaluation station-days' pairs of every model and the slab of
    chunks :func:`gridfuse.io.values_at_cells` reads."""
    time = {"station_days_m": p.station_days / 1e6}
    mem = {"obs_mb": p.station_days * _ROW_BYTES / 1e6}
    if p.spec.held_out == "evaluation_stations":
        models = 1 + len(p.sources)
        held = max(0, p.stations - p.training_stations)
        time["k:product_read_s_per_cell_day"] = p.cells * p.days * models
        mem["pairs_mb"] = held * p.days * models * _ROW_BYTES / 1e6
        mem["slab_mb"] = _mb(_SLAB_COPIES * _SLAB_DAYS * min(p.cells, 512 * 512))
    else:  # the scheme's out-of-fold rows (~90 B as cross_validate_so2 prices them), read
        # as an Arrow table and converted to pandas (:func:`gridfuse.plots.oof_pairs`)
        mem["pairs_mb"] = 2 * _so2_scheme_rows(p, "site_cv") * 90 / 1e6
    return Work("report_scatter", time=time, mem=mem)


@_rule(
    "report_scores",
    "report_interpolation",
    "report_training",
    "report_ablation",
    "report_input_qc",
)
def _report_small(p: Product, wc) -> Work:
    return Work("report_small")


# --- so2
def _table_columns(f) -> int:
    """Columns of a feature table of the features ``f`` (a FeatureConfig): the features
    plus ~10 keys and targets."""
    return len(f.base_columns) + len(f.conv_columns) + 10


def _so2_columns(p: Product) -> int:
    """Columns of the SO2 feature table of the configured features."""
    from .features import FeatureConfig

    return _table_columns(FeatureConfig.from_dict(p.model("features", default={}) or {}))


def _so2_model_columns(p: Product, model: str) -> int:
    """Columns a model of the SO2 CV sees, counted as :func:`_so2_columns` counts them: the
    full LightGBM the configured features; the baselines (``lightgbm_plain``, ``rf_ps``,
    ``lstm``; :mod:`gridfuse.models.registry`) the plain features (no convolution, spatial
    sampling or random ID; RF-Ps with the random ID): 23 columns instead of 143 for the
    preset, so their fits and grids were priced ~5x too high on the full column count."""
    from .features import FeatureConfig

    if model == "lightgbm":
        return _so2_columns(p)
    f = FeatureConfig.from_dict(p.model("features", default={}) or {}).plain()
    if model == "rf_ps":
        f = replace(f, random_id=True)
    return _table_columns(f)


def _so2_rounds(p: Product) -> int:
    """Boosting rounds (the configured maximum: early stopping may stop sooner)."""
    return int(p.model("lightgbm", "num_boost_round", default=5000))


def _so2_table_mb(p: Product) -> float:
    return _mb(p.station_days * _so2_columns(p), 8)


def _so2_fit_terms(p: Product, rows: float, models: list[str], times: float = 1) -> dict:
    """Kernel work terms of fitting the named SO2 models ``times`` on ``rows`` station-days
    (each model on its own columns, :func:`_so2_model_columns`)."""
    t: dict[str, float] = {}

    def add(name, units):
        t[name] = t.get(name, 0.0) + units * times

    for m in models:
        cols = _so2_model_columns(p, m)
        if m in ("lightgbm", "lightgbm_plain"):  # histograms per row + split search per leaf
            add("k:lgbm_fit_s_per_row_round_col", rows * _so2_rounds(p) * cols)
            add("k:lgbm_fit_s_per_round_col", _so2_rounds(p) * cols)
        elif m == "rf_ps":
            trees = int(p.model("rf_ps", "n_estimators", default=500))
            frac = float(p.model("rf_ps", "max_features", default=0.5))
            add("k:rf_fit_s_per_row_tree_col", rows * trees * cols * frac * math.log2(max(rows, 2)))
        elif m == "lstm":
            ep = int(p.model("lstm", "epochs", default=30))
            hid = int(p.model("lstm", "hidden", default=64))
            seq = int(p.model("lstm", "seq_len", default=7))
            lay = int(p.model("lstm", "layers", default=2))
            add("k:lstm_fit_s_per_gmac", rows * ep * seq * lay * 4 * hid * (hid + cols) * 3 / 1e9)
    return t


def _so2_threads(p: Product) -> int:
    return threads_for(p.station_days, 100_000, lo=2, hi=16)


@_rule("samples_so2")
def _so2_samples(p: Product, wc) -> Work:
    nvar = len(p.model("features", "dynamic", default=[]) or []) or 11
    return Work(
        "so2_samples",
        time={
            "cell_days_m": p.cells * p.days * nvar / 1e6,
            "values_m": p.station_days * _so2_columns(p) / 1e6,
        },
        # station_frame reads one variable's 16-day block of the grid at a time
        mem={"block_mb": _mb(p.cells * 16), "table_mb": _so2_table_mb(p)},
    )


@_rule("train_so2")
def _so2_train(p: Product, wc) -> Work:
    return Work(
        "so2_train",
        threads=_so2_threads(p),
        time=_so2_fit_terms(p, p.station_days, ["lightgbm"]),
        mem={"table_mb": _so2_table_mb(p)},
    )


@_rule("explain_so2")
def _so2_explain(p: Product, wc) -> Work:
    n = int(p.model("shap_samples", default=2000))
    return Work(
        "so2_explain",
        time={"rows_rounds_g": n * _so2_rounds(p) * _so2_columns(p) / 1e9},
        mem={"table_mb": _so2_table_mb(p)},
    )


def _so2_predictor(p: Product) -> str:
    """Engine of the gridded SO2 prediction (model.predictor; lleaves by default)."""
    return str(p.model("predictor", default="lleaves"))


def lleaves_break_even_rows(k: Constants | None = None) -> float:
    """Rows a fitted LightGBM model must predict for compiling its trees (lleaves) and
    predicting with them to cost less CPU time than ``Booster.predict``: the compile rate per
    tree over the per row x tree saving, so the same for any number of trees (both sides
    scale with them). ``inf`` when the constants lack a rate or the compiled trees are not
    faster. ``k`` defaults to :func:`load_constants` (what a job reads at run time)."""
    k = k or load_constants()
    try:
        per_tree = k.kernel("lleaves_compile_s_per_tree")
        saved = k.kernel("lgbm_predict_s_per_row_round") - k.kernel(
            "lleaves_predict_s_per_row_round"
        )
    except KeyError:
        return math.inf
    return per_tree / saved if saved > 0 else math.inf


def compile_pays(rows: float, predictor: str = "lleaves", k: Constants | None = None) -> bool:
    """Whether a fitted LightGBM model predicting ``rows`` rows compiles its trees first:
    ``model.predictor`` is ``lleaves`` and ``rows`` reach :func:`lleaves_break_even_rows`
    (the OSSE grid scoring of baselines and ablation variants; the product's own model is
    always compiled once by compile_so2)."""
    return str(predictor) == "lleaves" and rows >= lleaves_break_even_rows(k)


def _so2_predict_term(p: Product) -> str:
    """Kernel of one row x tree of the gridded prediction: the compiled trees' or LightGBM's."""
    if _so2_predictor(p) == "lleaves":
        return "k:lleaves_predict_s_per_row_round"
    return "k:lgbm_predict_s_per_row_round"


@_rule("compile_so2")
def _so2_compile(p: Product, wc) -> Work:
    """The full model's trees compiled once by lleaves (at most num_boost_round trees)."""
    trees = _so2_rounds(p)
    return Work(
        "compile_so2",
        time={"k:lleaves_compile_s_per_tree": trees},
        mem={"k:lleaves_compile_mb_per_tree": trees},
    )


@_rule("predict_so2")
def _so2_predict(p: Product, wc) -> Work:
    days = p.days_in_year(wc["year"])
    cell_days = p.cells * days * mask_fraction(p)
    nvar = len(p.model("features", "dynamic", default=[]) or []) or 11
    # a time block never holds more days than the job's year has in the period
    block = max(1, min(int(p.model("predict_days", default=8)), days))
    tile = int(p.model("predict_tile", default=256))
    cols = _so2_columns(p)
    threads = p.threads(threads_for(p.cells, 1_000_000, lo=2, hi=16))
    return Work(
        "so2_predict",
        threads=threads,
        time={
            "cell_days_m": cell_days / 1e6,
            "k:so2_features_s_per_value": cell_days * cols,
            _so2_predict_term(p): cell_days * _so2_rounds(p),
        },
        # one time block of the grid's fields, and the feature matrices of the `threads`
        # tiles built side by side (predict_blocks)
        mem={
            "block_mb": _mb(p.cells * block * nvar),
            "tile_mb": _mb(tile * tile * block * cols, 8) * threads,
        },
    )


# --- so2, one job per CV fold and per ablation variant (gridfuse.models.so2 plans them)
def _fit_models_terms(
    p: Product, models, rows: float, cols: int | None = None, times: float = 1
) -> dict:
    """Kernel terms of fitting ``models`` ``times`` on ``rows`` station-days each (with an
    ablation variant's own column count ``cols``)."""
    t = _so2_fit_terms(p, rows, list(models), times)
    if cols is not None:  # an ablation variant's own column count
        full = _so2_columns(p)
        t = {k: v * (cols + 10) / full for k, v in t.items()}
    return t


def _add_terms(*parts: Mapping[str, float]) -> dict:
    """Work terms of several steps of one job, summed (a kernel may serve several steps:
    the LSTM's fit and its gridded prediction are both ``k:lstm_fit_s_per_gmac``)."""
    out: dict[str, float] = {}
    for part in parts:
        for key, v in part.items():
            out[key] = out.get(key, 0.0) + v
    return out


# resident memory of the torch runtime an LSTM job loads (import and first fit: +267 MB
# measured on top of LightGBM, pandas and gridfuse)
TORCH_MB = 270.0


def _so2_seq_mb(p: Product, models, rows: float) -> float:
    """The LSTM's input sequences: ``rows`` x ``seq_len`` days x its (plain) features, float32
    (:meth:`gridfuse.models.so2.SO2Model._inputs`), held about five times at the fit's peak:
    the sequences, their standardized and NaN-filled copies and the network's input
    (:meth:`gridfuse.models.lstm.LSTMRegressor.fit`), the statistics' temporaries, the
    history's feature matrix and the test rows' sequences; 0 without the LSTM."""
    if "lstm" not in models:
        return 0.0
    seq = int(p.model("lstm", "seq_len", default=7))
    return 5 * _mb(rows * seq * (_so2_model_columns(p, "lstm") - 10))


def _so2_model_mem(p: Product, models, rows: float, like: str = "") -> dict:
    """Memory terms of fitting ``models`` one after the other on ``rows`` station-days of
    the table: the table and the feature matrices a LightGBM or RF-Ps fit builds from it
    (``table_mb``; its coefficient, ~2, is where the fit puts the copies), the RF-Ps forest,
    the LSTM's sequences (an LSTM alone holds the table's frame and its sequences, no feature
    matrix of the whole table) and the torch runtime it loads. Summed: a conservative bound
    where several models share a job. ``like``: priced at that rule's fitted coefficients
    (``r:<like>:<term>``; a job whose runs are too small to show them)."""
    mem = {}
    if any(m in models for m in ("lightgbm", "lightgbm_plain", "rf_ps")):
        mem["table_mb"] = _so2_table_mb(p)
    if "rf_ps" in models:
        mem["forest_mb"] = _forest_mb(p, models, rows)
    if "lstm" in models:
        mem["seq_mb"] = _so2_seq_mb(p, models, rows)
        mem["torch_mb"] = TORCH_MB
    return {f"r:{like}:{t}" if like else t: v for t, v in mem.items()}


def _osse_scores_mb(p: Product) -> float:
    """What an osse_grid score holds besides its fixed part (:func:`gridfuse.models.so2.
    osse_grid_scores`, ``osse_baseline_scores``): the pairs are scored a day at a time
    (:class:`gridfuse.models.so2.evaluation.OssePairs`), so one day's truth and prediction
    grids and their copies inside the mask, 4 float32 grids; the float64 temporaries of its
    4-million-value chunks are a constant (the fixed part). Before, the period's pairs were
    pooled: 84 B per kept cell-day (the China rehearsal's 2 days: 3.7 GB)."""
    return _mb(p.cells * 4)


def _forest_mb(p: Product, models, rows: float) -> float:
    """One fold's RF-Ps forest: ~2/3 node per training row and tree, ~72 B a node."""
    if "rf_ps" not in models:
        return 0.0
    return int(p.model("rf_ps", "n_estimators", default=500)) * 0.6 * rows * 72 / 1e6


@_rule("cross_validate_fold_so2")
def _so2_cv_fold(p: Product, wc) -> Work:
    """One fold of one scheme: each of the scheme's models fitted on the fold's training
    station-days, one after the other (the previous model is still held while the next one
    fits: the memory terms are summed)."""
    from .models.so2 import cv_plan

    cv = p.cfg["cv"]
    plan = cv_plan([wc["scheme"]], cv, p.model("so2_baselines", default=[]))
    job = next(j for j in plan if str(j["fold"]) == str(wc["fold"]))
    rows = p.station_days * float(job["train_share"])
    return Work(
        "cross_validate_fold_so2",
        threads=_so2_threads(p),
        time=_fit_models_terms(p, job["models"], rows),
        mem=_so2_model_mem(p, job["models"], rows),
    )


def _grid_cell_days(p: Product, every: int) -> float:
    """Cell-days a model gridded on every ``every``-th day inside the mask predicts."""
    return p.cells * mask_fraction(p) * math.ceil(p.days / max(1, every))


def _grid_compiles(p: Product, model: str, every: int) -> bool:
    """Whether a LightGBM model gridded for osse_grid compiles its trees first
    (:func:`compile_pays`, as ``osse_baseline_scores`` decides at run time)."""
    return model.startswith("lightgbm") and compile_pays(
        _grid_cell_days(p, every), _so2_predictor(p)
    )


def _grid_predict_terms(p: Product, model: str, every: int) -> dict:
    """A model gridded on every ``every``-th day inside the mask (OSSE scoring), on its own
    columns (:func:`_so2_model_columns`). A LightGBM model predicts with its trees compiled
    (plus their compile) when that pays (:func:`_grid_compiles`), with ``Booster.predict``
    otherwise."""
    cell_days = _grid_cell_days(p, every)
    cols = _so2_model_columns(p, model)
    t = {"k:so2_features_s_per_value": cell_days * cols}
    if _grid_compiles(p, model, every):
        t["k:lleaves_predict_s_per_row_round"] = cell_days * _so2_rounds(p)
        t["k:lleaves_compile_s_per_tree"] = _so2_rounds(p)
    elif model.startswith("lightgbm"):
        t["k:lgbm_predict_s_per_row_round"] = cell_days * _so2_rounds(p)
    elif model == "rf_ps":
        t["k:rf_predict_s_per_row_tree"] = cell_days * int(
            p.model("rf_ps", "n_estimators", default=500)
        )
    elif model == "lstm":
        hid = int(p.model("lstm", "hidden", default=64))
        seq = int(p.model("lstm", "seq_len", default=7))
        lay = int(p.model("lstm", "layers", default=2))
        t["k:lstm_fit_s_per_gmac"] = cell_days * seq * lay * 4 * hid * (hid + cols) / 1e9
    return t


def _grid_compile_mem(p: Product, model: str, every: int) -> dict:
    """The compile's peak above the job's arrays when the gridded LightGBM compiles."""
    return (
        {"k:lleaves_compile_mb_per_tree": _so2_rounds(p)} if _grid_compiles(p, model, every) else {}
    )


@_rule("score_grid_so2")
def _so2_score_grid(p: Product, wc) -> Work:
    """osse_grid of one model: the full model's product read against the truth
    (``score_grid_so2``), or a baseline fitted on every station-day, gridded on every k-th day
    and scored (``score_grid_so2.baseline``: its fit and grid at the kernels' rates, its own
    fixed cost: the two kinds of job are fitted apart)."""
    every = int(p.cfg["cv"].get("so2_osse_every", 1))
    model = wc.get("model", "lightgbm")
    time = {"cell_days_m": _grid_cell_days(p, every) / 1e6}
    # the kept days' pairs of the whole period are scored at once (not a block at a time)
    mem = {"scores_mb": _osse_scores_mb(p)}
    key = "score_grid_so2"
    if model != "lightgbm":
        key += ".baseline"
        time = _add_terms(
            time,
            _fit_models_terms(p, [model], p.station_days),
            _grid_predict_terms(p, model, every),
        )
        mem |= _so2_model_mem(p, [model], p.station_days, like="cross_validate_fold_so2")
        mem |= _grid_compile_mem(p, model, every)
    return Work(key, threads=_so2_threads(p), time=time, mem=mem)


def _so2_oof_rows(p: Product) -> float:
    """Out-of-fold rows of the CV: every (observed) station-day once per scheme and model
    the scheme refits (a region scheme's held-out stations counted as all, an upper bound)."""
    return sum(_so2_scheme_rows(p, s) for s in p.cfg["cv"]["so2_schemes"])


def _so2_scheme_rows(p: Product, scheme: str) -> float:
    """Out-of-fold rows of one scheme (the first configured one when ``scheme`` is not):
    every (observed) station-day once per model the scheme refits."""
    from .models.so2 import scheme_models

    cv = p.cfg["cv"]
    schemes = list(cv["so2_schemes"])
    chosen = scheme if scheme in schemes or not schemes else schemes[0]
    base = p.model("so2_baselines", default=[])
    return p.station_days * len(scheme_models(chosen, cv, base))


@_rule("cross_validate_so2")
def _so2_cv_gather(p: Product, wc) -> Work:
    """scores.csv: the folds' out-of-fold predictions read, concatenated, scored and written.
    A row (model, scheme, fold, subset, station, date, obs, pred; Arrow strings) is ~90 B,
    held three times at the peak: the folds' frames and their concatenation, then the
    concatenation and the Arrow table written (270-330 B a row measured on 1 and 4 million
    rows)."""
    n = _so2_oof_rows(p)
    return Work(
        "cross_validate_so2", time={"oof_rows_m": n / 1e6}, mem={"oof_mb": 3 * n * 90 / 1e6}
    )


@_rule("ablation_variant_so2")
def _so2_ablation_variant(p: Product, wc) -> Work:
    """One ablation variant: its LightGBM in every fold of the ablation schemes (+ osse_grid
    of the variant in an OSSE)."""
    from .features import FeatureConfig
    from .models.so2 import ablation_plan

    cv = p.cfg["cv"]
    feats = FeatureConfig.from_dict(p.model("features", default={}) or {})
    plan = {j["variant"]: j for j in ablation_plan(feats, cv)}
    job = plan.get(wc.get("variant", "full")) or next(iter(plan.values()))
    k = max(2, int(cv.get("n_splits", 10)))
    rows = p.station_days * (1 - 1 / k)
    time = _fit_models_terms(p, ["lightgbm"], rows, job["columns"], times=job["fits"])
    # the variant's LightGBM fits hold what a fold's LightGBM fit holds
    mem = _so2_model_mem(p, ["lightgbm"], rows, like="cross_validate_fold_so2")
    if p.synthetic and cv.get("so2_osse_ablation", False):  # + fitted on all, gridded, scored
        every = int(cv.get("so2_osse_every", 1))
        time = _add_terms(
            time,
            _fit_models_terms(p, ["lightgbm"], p.station_days, job["columns"]),
            _grid_predict_terms(p, "lightgbm", every),
        )
        mem["scores_mb"] = _osse_scores_mb(p)
        mem |= _grid_compile_mem(p, "lightgbm", every)
    return Work("ablation_variant_so2", threads=_so2_threads(p), time=time, mem=mem)


@_rule("ablation_so2")
def _so2_ablation_gather(p: Product, wc) -> Work:
    return Work("report_small")


@_rule("build_mask")
def _build_mask(p: Product, wc) -> Work:
    return Work("build_mask", time={"cells_m": p.cells / 1e6}, mem={"grid_mb": _mb(p.cells * 2)})


@functools.lru_cache(maxsize=16)
def _mask_fraction(spec_json: str, grid_json: str) -> float:
    import numpy as np

    from .grid import Grid
    from .mask import build_mask

    inside = build_mask(json.loads(spec_json), Grid.from_config(json.loads(grid_json)))
    return float(np.mean(inside))


def mask_fraction(p: Product) -> float:
    """Share of the grid inside the product's domain mask: 1 without a mask; measured on the
    grid when the mask can be built; while the mask's file is not there, the config's
    ``mask.area_share`` (when given, else 1: the whole rectangle)."""
    spec = dict(p.cfg.get("mask") or {})
    share = float(spec.pop("area_share", 0) or 0)
    if not (spec.get("path") or spec.get("box") or spec.get("polygon")):
        return 1.0
    if spec.get("path") and not Path(spec["path"]).exists():
        return share or 1.0
    try:
        return _mask_fraction(
            json.dumps(spec, sort_keys=True, default=str),
            json.dumps(dict(p.cfg["grid"]), sort_keys=True),
        )
    except Exception as err:  # an unreadable mask is build_mask's error to report
        logger.warning("mask of the product not readable (%s): priced on the whole grid", err)
        return 1.0


def notes(product_cfg: Mapping, constants: Constants | None = None) -> list[str]:
    """What a plan of this product assumes (printed under the plan's table)."""
    p = Product(product_cfg)
    out = []
    if p.spec.model_family == "lightgbm":
        out.append(
            f"LightGBM priced at model.lightgbm.num_boost_round = {_so2_rounds(p)} rounds, the "
            "cap (early stopping may end sooner; lower it to bound the cost)"
        )
        engine = _so2_predictor(p)
        out.append(
            f"gridded prediction priced with model.predictor = {engine}"
            + (
                " (the trees compiled once by compile_so2; a LightGBM baseline or ablation "
                "variant gridded for osse_grid compiles its own when it predicts at least "
                f"{lleaves_break_even_rows():,.0f} cell-days, the break-even)"
                if engine == "lleaves"
                else " (Booster.predict; lleaves compiles the trees and predicts faster)"
            )
        )
        spec = dict(p.cfg.get("mask") or {})
        if spec.get("path") and not Path(spec["path"]).exists():
            share = float(spec.get("area_share", 0) or 0)
            if share:
                out.append(
                    f"mask file {spec['path']} not found: predictions priced on "
                    f"mask.area_share = {share:g} of the grid (the config's stated share)"
                )
            else:
                out.append(
                    f"mask file {spec['path']} not found: predictions priced on the whole grid"
                )
    if p.spec.model_family == "mpfm":
        k = constants or load_constants()
        rules = ", ".join(GPU_RULES)
        if not (gpus_per_job() > 0 and str(_mpfm(p).get("device", "auto")).lower() != "cpu"):
            why = "GRIDFUSE_SLURM_GPUS=0" if gpus_per_job() == 0 else "model.mpfm.device = cpu"
            out.append(f"{rules} priced on CPUs ({why})")
        elif not k.gpu_kernels:
            out.append(f"{rules} priced on CPUs: the cost constants hold no GPU rate")
        else:
            g = k.gpu
            when = g.get("measured", {}).get("when", "?")
            prec = _mpfm(p).get("predict_precision", "fp32")
            out.append(
                f"{rules}: network kernels priced on one GPU per job at the rates of "
                f"{g.get('device', '?')} measured {when} ({prec} inference; see "
                "benchmarks/devices/); a slower GPU takes longer. GRIDFUSE_SLURM_GPUS=0 "
                "prices them on CPUs"
            )
    if not p.synthetic:
        out.append(
            f"{p.stations} stations assumed in the region ({p.kind}); the station files hold "
            "the whole network"
        )
    return out


# ------------------------------------------------------------------------ dispatch
class NoCostModel(KeyError):
    """A workflow rule the cost model has no function for."""


# Source formats whose ingest has a cost function of its own (the others: ``ingest``).
INGEST_BY_FORMAT = {"tropomi_l2": "ingest_tropomi", "era5_met": "ingest_era5_met"}


def _ingest_source(rule: str, product_cfg: Mapping) -> str | None:
    """The source key of an ``ingest_<source>`` rule of the product, else None."""
    source = rule[len("ingest_") :] if rule.startswith("ingest_") else None
    return source if source in product_cfg.get("sources", {}) else None


def rule_key(rule: str, product_cfg: Mapping) -> str:
    """The cost function name of a workflow rule: ``ingest_<source>`` (one rule per source
    key, every format read by the same script) -> the format's own function
    (:data:`INGEST_BY_FORMAT`) or ``ingest``."""
    source = _ingest_source(rule, product_cfg)
    if source is not None:
        fmt = product_cfg["sources"][source].get("format")
        return INGEST_BY_FORMAT.get(fmt, "ingest")
    # a format's own ingest function is reached only through a source of that format
    if rule in RULES and rule not in INGEST_BY_FORMAT.values():
        return rule
    raise NoCostModel(
        f"no cost model for rule {rule!r} (known: {sorted(RULES)} and ingest_<source>)"
    )


def work(
    rule: str,
    product_cfg: Mapping,
    wildcards: Mapping[str, str],
    *,
    covers: Callable[[str, int], bool] | None = None,
    threads: int | None = None,
) -> Work:
    """The :class:`Work` of one job of ``rule`` for a product.

    ``covers(source, year)`` says whether a source has data in a year (the workflow's
    coverage rule; default: the registry's coverage of the source's version within its
    ``first_year``/``last_year``): ingest and downscale
    jobs of uncovered years only write an absent marker, and a year's product uses the
    sources covering it.  ``threads``: the threads a measured job ran with (its benchmark
    record's), for the terms that scale with them and the Work's ``threads``; default: the
    cost model's own choice.
    """
    p = Product(product_cfg, covers, threads)
    key = rule_key(rule, product_cfg)
    source = _ingest_source(rule, product_cfg)
    if key == "ingest":
        w = _ingest_precip(p, source, wildcards["year"])
    elif source is not None:
        w = RULES[key](p, {**wildcards, "source": source})
    else:
        w = RULES[key](p, wildcards)
    return replace(w, threads=int(threads)) if threads else w


def estimate(
    rule: str,
    product_cfg: Mapping,
    wildcards: Mapping[str, str],
    *,
    covers: Callable[[str, int], bool] | None = None,
    constants: Constants | None = None,
) -> Cost:
    """Estimated :class:`Cost` of one job of ``rule`` (see the module docstring)."""
    k = constants or load_constants()
    return price(work(rule, product_cfg, wildcards, covers=covers), k, rule=rule)


# ------------------------------------------------------------------------ calibration
def _num(row: Mapping, key: str) -> float:
    try:
        return float(row.get(key, "nan"))
    except ValueError:
        return math.nan


def read_benchmarks(folder: str | os.PathLike) -> list[dict]:
    """Every job's benchmark record under ``folder`` (Snakemake ``--benchmark-extended`` TSVs).

    Returns dicts with ``rule``, ``wildcards`` (dict), ``threads``, ``s`` (wall seconds),
    ``cpu_s`` (CPU time), ``max_rss`` (MB), ``resources`` (dict) and ``path``.  Files
    without the extended columns are skipped (their rule is unknown).
    """
    import ast
    import csv

    out = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        if "benchmarks" not in path.parts:
            continue
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        for row in rows[-1:]:  # the last repeat
            if "rule_name" not in row:
                continue

            num = functools.partial(_num, row)
            out.append(
                {
                    "rule": row["rule_name"],
                    "wildcards": ast.literal_eval(row.get("wildcards") or "{}"),
                    "threads": int(float(row.get("threads") or 1)),
                    "s": num("s"),
                    "cpu_s": num("cpu_time"),
                    "max_rss": num("max_rss"),
                    "resources": ast.literal_eval(row.get("resources") or "{}"),
                    "path": str(path),
                }
            )
    return out


def _nnls_fit(X, y, lower):
    """Least squares ``y ~ X c`` with ``c >= lower`` (NNLS on the shifted problem)."""
    import numpy as np
    from scipy.optimize import nnls

    X = np.asarray(X, float)
    y = np.asarray(y, float) - X @ np.asarray(lower, float)
    scale = np.where(np.abs(X).max(axis=0) > 0, np.abs(X).max(axis=0), 1.0)
    c, _ = nnls(X / scale, y)
    return c / scale + np.asarray(lower, float)


def fit_rule_constants(
    jobs: list[tuple[Work, float, float]], k: Constants | None = None
) -> dict[str, dict]:
    """Fit each rule key's ``fixed_s``, ``time``, ``fixed_mb`` and ``mem`` coefficients.

    Parameters
    ----------
    jobs : list of (Work, cpu_s, max_rss_mb)
        Measured jobs (from :func:`read_benchmarks`) with their :class:`Work`.
    k : Constants, optional
        Kernel rates; the CPU time of ``k:`` / ``r:`` terms is subtracted before fitting.

    Returns
    -------
    dict
        Rule key -> constants entry (with ``n`` jobs and the largest relative errors).
        Memory terms named ``*_mb`` (arrays the job holds) get coefficients of at least 1:
        a job holds its arrays at least once, even where the runs are too small to show it;
        a term is fitted only where its arrays reach ``MEM_SUPPORT`` of a job's peak
        (``mem_fitted``), and the fixed part is raised until every measured peak is covered.
        ``time_share``: the largest share of a job's CPU time each time term explains (a
        small share means the runs hardly show that term).
    """
    import numpy as np

    k = k or Constants({})
    by_key: dict[str, list] = {}
    for w, cpu, rss in jobs:
        if math.isfinite(cpu) and math.isfinite(rss):
            by_key.setdefault(w.key, []).append((w, cpu, rss))
    out = {}
    for key, rows in sorted(by_key.items()):
        tterms = sorted({t for w, _, _ in rows for t in w.time if not t.startswith(("k:", "r:"))})
        mterms = sorted({m for w, _, _ in rows for m in w.mem if not m.startswith(("k:", "r:"))})
        known = np.array(
            [
                sum(_coef(k, {}, t) * u for t, u in w.time.items() if t[:2] in ("k:", "r:"))
                for w, _, _ in rows
            ]
        )
        cpu = np.array([r[1] for r in rows]) - known
        # likewise the memory of kernel terms (e.g. compile_so2's MB per tree)
        known_m = np.array(
            [
                sum(_coef(k, {}, m, "mem") * mb for m, mb in w.mem.items() if m[:2] in ("k:", "r:"))
                for w, _, _ in rows
            ]
        )
        rss = np.array([r[2] for r in rows]) - known_m
        Xt = np.array([[1.0] + [w.time.get(t, 0.0) for t in tterms] for w, _, _ in rows])
        Xm = np.array([[1.0] + [w.mem.get(m, 0.0) for m in mterms] for w, _, _ in rows])
        ct = _nnls_fit(Xt, cpu, [0.0] * (1 + len(tterms)))
        lower_m = np.array([0.0] + [1.0 if m.endswith("_mb") else 0.0 for m in mterms])
        # a memory term is fitted only where the runs show it: where its arrays reach
        # MEM_SUPPORT of some job's peak; elsewhere its coefficient stays at the lower bound
        # (arrays held once) and the runs fit only the fixed part
        # (a job without the term shows nothing, whatever is left of its peak)
        shown = np.array(
            [True]
            + [
                bool(np.any((Xm[:, i + 1] > 0) & (Xm[:, i + 1] >= MEM_SUPPORT * rss)))
                for i in range(len(mterms))
            ]
        )
        cm = lower_m.copy()
        fixed_part = Xm[:, ~shown] @ lower_m[~shown]
        cm[shown] = _nnls_fit(Xm[:, shown], rss - fixed_part, lower_m[shown])
        # the fixed part covers every measured peak: no calibration job above its model
        cm[0] += max(0.0, float(np.max(rss - Xm @ cm)))
        pred_t, pred_m = Xt @ ct + known, Xm @ cm + known_m
        rss = rss + known_m  # the measured peaks again, for the errors below
        share = [
            float(np.max(ct[i + 1] * Xt[:, i + 1] / np.maximum(cpu + known, 1e-9)))
            for i in range(len(tterms))
        ]
        out[key] = {
            "fixed_s": round(float(ct[0]), 3),
            "time": {t: float(f"{c:.4g}") for t, c in zip(tterms, ct[1:])},
            # rounded up: the fixed part still covers every measured peak
            "fixed_mb": math.ceil(float(cm[0]) * 10) / 10,
            "mem": {m: float(f"{c:.4g}") for m, c in zip(mterms, cm[1:])},
            "mem_fitted": [m for m, ok in zip(mterms, shown[1:]) if ok],
            "time_share": {t: round(v, 3) for t, v in zip(tterms, share)},
            "n": len(rows),
            "max_cpu_s": round(float(cpu.max() + known.max()), 2),
            "max_rss_mb": round(float(rss.max()), 1),
            "cpu_rel_err": round(
                float(np.max(np.abs(pred_t - (cpu + known)) / np.maximum(cpu + known, 1.0))), 3
            ),
            "rss_rel_err": round(float(np.max(np.abs(pred_m - rss) / np.maximum(rss, 1.0))), 3),
        }
    return out
