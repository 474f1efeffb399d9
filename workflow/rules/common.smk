# Config validation, product/year helpers, paths and the target registry.
import datetime as _dt
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gridfuse.sources.registry import get_format

validate(config, "../schemas/config.schema.yaml")


def check_config_semantics():
    """What the schema cannot say: real dates, end >= start, an enabled product, ..."""
    import yaml
    from gridfuse.config import ConfigError, check_config

    with open(workflow.source_path("../schemas/config.schema.yaml")) as f:
        schema = yaml.safe_load(f)
    try:
        check_config(config, schema)
    except ConfigError as err:
        raise WorkflowError(str(err)) from None


check_config_semantics()

RESULTS = config["results"]
PRODUCTS = {k: v for k, v in config["products"].items() if v.get("enabled", True)}


wildcard_constraints:
    product="|".join(PRODUCTS) or "NO_PRODUCT",
    year=r"\d{4}",
    source=r"[a-z][a-z0-9_]*",
    method=r"nearest|bilinear|cubic",


def pcfg(product):
    """The (validated, defaults filled) config of one product."""
    try:
        return PRODUCTS[product]
    except KeyError:
        raise WorkflowError(
            f"unknown product {product!r}; configured: {sorted(PRODUCTS)}"
        )


def products_of(kind):
    return [p for p, c in PRODUCTS.items() if c["kind"] == kind]


def period(product):
    c = pcfg(product)["period"]
    return _dt.date.fromisoformat(c["start"]), _dt.date.fromisoformat(c["end"])


def years(product):
    """Years of the product's period (optionally restricted by outputs.years)."""
    start, end = period(product)
    ys = list(range(start.year, end.year + 1))
    # `--config` passes nested values as strings: accept "2019" as well as 2019
    only = [int(y) for y in pcfg(product)["outputs"]["years"]]
    return [y for y in ys if y in only] if only else ys


def all_years(product):
    start, end = period(product)
    return list(range(start.year, end.year + 1))


def sources(product):
    return list(pcfg(product)["sources"])


def is_synthetic(product):
    return bool(pcfg(product)["synthetic"].get("enabled", False))


def source_cfg(product, source):
    try:
        return pcfg(product)["sources"][source]
    except KeyError:
        raise WorkflowError(f"product {product!r} has no source {source!r}")


def source_format(product, source):
    """The registry entry (gridfuse.sources.registry) of a source's format."""
    fmt = source_cfg(product, source)["format"]
    try:
        return get_format(fmt)
    except KeyError as err:
        raise WorkflowError(
            f"products.{product}.sources.{source}.format: {err.args[0]}"
        )


def source_coverage(product, source):
    """First and last date (None = open) a source has data: the registry's coverage of
    its product version within the configured first_year/last_year; for the demo, TROPOMI
    starts at the synthesizer's first orbit."""
    c = source_cfg(product, source)
    start = None
    if is_synthetic(product) and c["format"] == "tropomi_l2":
        start = pcfg(product)["synthetic"].get("so2", {}).get("tropomi_start")
    try:
        return source_format(product, source).coverage(
            c.get("version", ""), c.get("first_year"), c.get("last_year"), start=start
        )
    except KeyError as err:
        raise WorkflowError(
            f"products.{product}.sources.{source}.version: {err.args[0]}"
        )


def source_covers(product, source, year):
    """Whether any day of ``year`` is covered (else the year is an absent marker)."""
    first, last = source_coverage(product, source)
    return (first is None or first.year <= int(year)) and (
        last is None or int(year) <= last.year
    )


def res(product, *parts):
    """Path under results/<product>/."""
    return os.path.join(RESULTS, product, *map(str, parts))


def synth_marker(product):
    return res(product, "raw", "manifest.json")


def raw_dir(product, source, year=None):
    """Folder of a source's raw files for a year (the demo's synthetic tree by default)."""
    path = source_cfg(product, source).get("path") or res(product, "raw", source)
    return path.format(year=year) if year is not None else path


def raw_input(product, source, year):
    """Input of an ingest job: the synthetic manifest (demo) or the year's raw folder."""
    if is_synthetic(product):
        return synth_marker(product)
    if not source_covers(product, source, year):
        return []
    return raw_dir(product, source, year)


def station_input(product):
    if is_synthetic(product):
        return synth_marker(product)
    c = pcfg(product)["stations"]
    return [p for p in (c["path"], c["table"]) if p]


def check_raw_inputs():
    """Stop early, naming the folder and the data's origin, when a real input is missing."""
    missing = []
    for product in PRODUCTS:
        if is_synthetic(product):
            continue
        for source in sources(product):
            c = source_cfg(product, source)
            for year in years(product):
                if not source_covers(product, source, year):
                    continue
                folder = raw_dir(product, source, year)
                if not Path(folder).exists():
                    where = c.get("url") or "see README.md, 'Data sources'"
                    missing.append(
                        f"  {product}/{source} {year}: folder {folder} not found (data: {where})"
                    )
                    break
        st = pcfg(product)["stations"]
        for key in ("path", "table"):
            if st[key] and not Path(st[key]).exists():
                missing.append(f"  {product}/stations: {key} {st[key]} not found")
    if missing:
        raise WorkflowError(
            "raw input data are missing; point the config at the downloaded files:\n"
            + "\n".join(missing)
        )


check_raw_inputs()


def remove_stale_temporaries():
    """Delete the temporaries (.<name>.gftmp.*) that killed jobs left under results/."""
    from gridfuse.io import remove_stale_temporaries as remove

    remove(RESULTS)  # logs what it removed


# ---------------------------------------------------------------------------------------
# Target registry: each stage file registers the outputs `rule all` should build, per
# product kind, as templates with {product} and optionally {year}, or as functions
# product -> paths.
from gridfuse.kinds import KINDS

TARGETS = {kind: [] for kind in KINDS}


def register_target(kind, template, when=None):
    """Add an output template (or a function product -> list of paths) for products of
    ``kind``; ``when(product)`` may exclude it."""
    TARGETS[kind].append((template, when))


def all_targets(wildcards=None):
    out = []
    for product, c in PRODUCTS.items():
        for template, when in TARGETS[c["kind"]]:
            if when is not None and not when(product):
                continue
            if callable(template):
                out += list(template(product))
            elif "{year}" in template:
                out += [
                    template.format(product=product, year=y, results=RESULTS)
                    for y in years(product)
                ]
            else:
                out.append(template.format(product=product, results=RESULTS))
    return out


# ---------------------------------------------------------------------------------------
# Resource requests: threads, mem_mb and runtime scale with the work of a job (grid cells x
# days, station-days, files per year) and grow by half of the first request per retry.
def retry(value, attempt=1, growth=0.5):
    """``value`` grown for retry ``attempt`` (1 = first try): +``growth`` x value per retry."""
    return int(value * (1 + growth * (int(attempt) - 1)))


def grid_cells(product):
    from gridfuse.grid import Grid

    return Grid.from_config(pcfg(product)["grid"]).size


def mem_for_cells(
    product, per_cell_day_bytes=4, days=366, base_mb=500, factor=3.0, attempt=1
):
    """Memory request (MB) scaling with the product grid x days (float32 by default)."""
    mb = base_mb + factor * grid_cells(product) * days * per_cell_day_bytes / 1e6
    return retry(mb, attempt)


def runtime_for(minutes, attempt=1, floor=5, cap=24 * 60):
    """Runtime request (min): ``minutes`` grown per retry, at least ``floor``, at most ``cap``
    (a day, the usual partition limit)."""
    return min(cap, max(floor, retry(minutes, attempt)))


def threads_for(work, per_thread, lo=1, hi=16):
    """Threads for ``work`` units when one thread should get about ``per_thread`` of them."""
    return int(min(hi, max(lo, work // per_thread)))


# Stations in a real product's region (CMA gauges of Qinghai: 48; CNEMC sites of China:
# ~1,700 in 2018 growing to ~1,900), with a margin; the demo's are configured.
REGION_STATIONS = {"precip": 60, "so2": 2000}
# Stations in the national files a station reader parses before cropping to the region.
NETWORK_STATIONS = {
    "cma_daily": 850,
    "cma_hourly": 2500,
    "cnemc": 2000,
    "generic_csv": 2500,
    "wide_csv": 2500,
}
# Bytes a station reader holds per station-day of those files at its peak (parsed rows with
# their columns, plus the concatenated copy): CMA daily rows ~170 B, hourly 24 x ~100 B,
# CNEMC wide hourly float64 24 x 8 B, each x2-3.
STATION_DAY_BYTES = {
    "cma_daily": 400,
    "cma_hourly": 6000,
    "cnemc": 600,
    "generic_csv": 6000,
    "wide_csv": 600,
}


def n_stations(product):
    """Stations of a product in its region (the synthetic count for the demo)."""
    c = pcfg(product)
    if is_synthetic(product):
        syn = c["synthetic"]
        if c["kind"] == "so2":
            return int(syn.get("so2", {}).get("n_stations", 60))
        return int(syn.get("n_stations", 40))
    return REGION_STATIONS[c["kind"]]


def station_days(product):
    """Station-days of the product's period (rows of the training tables)."""
    return n_stations(product) * synth_days(product)


def station_file_days(product):
    """Station-days in the files ingest_stations parses (real: the whole network's)."""
    fmt = pcfg(product)["stations"]["format"]
    if is_synthetic(product):
        return station_days(product)
    return NETWORK_STATIONS.get(fmt, 2500) * synth_days(product)


def station_read_mem(product, attempt=1):
    """Memory (MB) of ingest_stations: the reader's station-days of the network's files."""
    fmt = pcfg(product)["stations"]["format"]
    rows = station_file_days(product)
    return retry(500 + rows * STATION_DAY_BYTES.get(fmt, 6000) / 1e6, attempt)


def so2_columns(product):
    """Columns of the SO2 station-day feature table: the model's features (as the model
    builds them) plus ~10 keys and targets."""
    from gridfuse.features import FeatureConfig

    f = FeatureConfig.from_dict(pcfg(product)["model"]["features"])
    return len(f.base_columns) + len(f.conv_columns) + 10


def so2_table_mb(product):
    """MB of the station-day feature table (float64)."""
    return station_days(product) * so2_columns(product) * 8 / 1e6


def so2_cell_days(product, year):
    """Grid cells x days of one year of the product."""
    return grid_cells(product) * days_in_year(product, year)


def so2_threads(product):
    """Threads of the SO2 model jobs: one per ~100,000 station-days, 2 to 16."""
    return threads_for(station_days(product), 100_000, lo=2, hi=16)


def so2_fit_mem(product, copies=4, forest=False, attempt=1):
    """Memory (MB) of an SO2 fitting job: ``copies`` of the feature table (pandas, numpy,
    the LightGBM dataset, fold subsets) and, with ``forest``, the RF-Ps forest of one fold
    (~2/3 node per training row and tree, ~72 B per node)."""
    mb = 1500 + copies * so2_table_mb(product)
    m = pcfg(product)["model"]
    if forest and "rf_ps" in m.get("so2_baselines", ["rf_ps"]):
        trees = m.get("rf_ps", {}).get("n_estimators", 500)
        mb += trees * 0.6 * station_days(product) * 72 / 1e6
    return retry(mb, attempt)


def so2_fit_runtime(product, seconds_per_row, threads, attempt=1):
    """Runtime (min) of an SO2 fitting job: ``seconds_per_row`` per station-day and thread
    (demo: cross_validate 0.075, ablation 0.035, train 0.002), x2."""
    return runtime_for(
        10 + 2 * station_days(product) * seconds_per_row / threads / 60, attempt
    )


# Native steps per day and resolution (deg) of the gridded source formats, and the seconds
# one worker takes per file (measured on the demo's files: 0.03-0.07 s; real global files
# are larger, so x4).
STEPS_PER_DAY = {
    "imerg_hhr": 48,
    "cmorph": 48,
    "gsmap_hourly": 24,
    "gsmap_netcdf": 24,
    "gldas": 8,
    "era5": 24,
    "era5_met": 24,
}
FILES_PER_DAY = {"era5": 1 / 30, "era5_met": 1 / 30}
SECONDS_PER_FILE = {"era5": 60, "era5_met": 120}
NATIVE_RES = {
    "imerg_hhr": 0.1,
    "cmorph": 0.0727,
    "gsmap_hourly": 0.1,
    "gsmap_netcdf": 0.1,
    "gldas": 0.25,
    "era5": 0.25,
    "era5_met": 0.25,
}


def steps_per_year(fmt, days=366):
    """Sub-daily time steps a source format has in ``days`` days (IMERG: 17,568 a leap year)."""
    return int(STEPS_PER_DAY.get(fmt, 24) * days)


def files_per_year(fmt, days=366):
    """Files a source format has in ``days`` days (one per step, ERA5 one per month)."""
    return max(
        1, int(FILES_PER_DAY.get(fmt, STEPS_PER_DAY.get(fmt, 24)) * days + 0.999)
    )


def native_cells(product, fmt, margin_deg=1.0):
    """Cells of a source's native grid over the product region (plus a margin)."""
    g = pcfg(product)["grid"]
    r = NATIVE_RES.get(fmt, 0.1)
    ny = (g["north"] - g["south"] + 2 * margin_deg) / r
    nx = (g["east"] - g["west"] + 2 * margin_deg) / r
    return int(ny * nx)


def ingest_threads(product, source, year):
    """Reader processes of an ingest job: one per ~4,000 files of the year, 2 to 8."""
    fmt = source_cfg(product, source)["format"]
    return threads_for(
        files_per_year(fmt, days_in_year(product, year)), 4000, lo=2, hi=8
    )


def ingest_mem(product, source, year, threads, attempt=1):
    """Memory (MB) of an ingest job: the interpreter and its reader processes, the year of
    daily fields on the native grid and one 8-day block of steps (float32), x3."""
    fmt = source_cfg(product, source)["format"]
    cells = native_cells(product, fmt)
    days = days_in_year(product, year)
    # files of a month (ERA5) hold a month of steps; the step readers hold 8 days
    block = (31 if fmt in FILES_PER_DAY else 8) * STEPS_PER_DAY.get(fmt, 24)
    arrays = 3 * cells * (days + block) * 4 / 1e6
    return retry(400 + 150 * threads + arrays, attempt)


def ingest_runtime(product, source, year, threads, attempt=1):
    """Runtime (min) of an ingest job: the year's files at SECONDS_PER_FILE per worker."""
    fmt = source_cfg(product, source)["format"]
    files = files_per_year(fmt, days_in_year(product, year))
    return runtime_for(
        10 + files * SECONDS_PER_FILE.get(fmt, 0.3) / threads / 60, attempt
    )


# ---------------------------------------------------------------------------------------
# SO2 demo synthesis and ingest (synth_so2.smk, ingest_so2.smk) and static layers (static.smk).
def synth_so2_products():
    return [p for p in products_of("so2") if is_synthetic(p)]


def synth_days(product):
    start, end = period(product)
    return (end - start).days + 1


def so2_source_params(product, source, year):
    """Everything an SO2 ingest job needs from the config (reaches the script via params)."""
    c = source_cfg(product, source)
    prev = raw_dir(product, source, int(year) - 1)
    here = raw_dir(product, source, year)
    nxt = raw_dir(product, source, int(year) + 1)
    return {
        "folders": list(dict.fromkeys([here, prev, nxt])),
        "covered": source_covers(product, source, year),
        "grid": pcfg(product)["grid"],
        "start": pcfg(product)["period"]["start"],
        "end": pcfg(product)["period"]["end"],
        "utc_start_hour": pcfg(product)["day_window"]["utc_start_hour"],
        "source": {k: v for k, v in c.items() if k not in ("path", "url")},
    }


def days_in_year(product, year):
    start, end = period(product)
    first = max(start, _dt.date(int(year), 1, 1))
    last = min(end, _dt.date(int(year), 12, 31))
    return max(1, (last - first).days + 1)


def static_layers(product):
    """Layer key -> {path, ...} of a product: the demo's synthetic GeoTIFFs or the config."""
    from gridfuse.kinds import get_kind

    if is_synthetic(product):
        kind = get_kind(pcfg(product)["kind"])
        return {
            k: {"path": res(product, "raw", "static", f"{k}.tif")}
            for k in kind.static_layers
        }
    out = {}
    for key, spec in pcfg(product)["static"].items():
        spec = {"path": spec} if isinstance(spec, str) else dict(spec)
        if spec.get("path"):
            out[key] = spec
    return out


def static_inputs(wildcards):
    if is_synthetic(wildcards.product):
        return [synth_marker(wildcards.product)]
    return [spec["path"] for spec in static_layers(wildcards.product).values()]
