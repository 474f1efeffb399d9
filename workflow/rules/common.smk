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

# `gridfuse plan` builds the whole DAG without raw data: raw inputs are not required then.
PLANNING = os.environ.get("GRIDFUSE_PLAN") == "1"


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


def product_value(product, key_path):
    """The value at ``key_path`` ("a.b.c") of a product's config."""
    value = pcfg(product)
    for key in key_path.split("."):
        try:
            value = value[key]
        except (KeyError, TypeError):
            raise WorkflowError(
                f"products.{product}.{key_path}: no such key ({key!r} missing)"
            ) from None
    return value


def product_param(key_path):
    """A ``params:`` function giving the value at ``key_path`` ("a.b.c") of the job's
    product config: each rule names the keys it reads, so a change of any other key
    does not rerun its jobs (params rerun trigger)."""

    def value(wildcards):
        return product_value(wildcards.product, key_path)

    value.__name__ = f"product_param_{key_path.replace('.', '_')}"
    return value


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
    if PLANNING and not is_synthetic(product):
        return []
    if is_synthetic(product):
        return synth_marker(product)
    if not source_covers(product, source, year):
        return []
    return raw_dir(product, source, year)


def station_input(product):
    if is_synthetic(product):
        return synth_marker(product)
    if PLANNING:
        return []
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


if not PLANNING:
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
from gridfuse.models.registry import names as model_names
from gridfuse.models.registry import settings_keys as model_settings_keys

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
# Resource requests: every rule's threads, mem_mb and runtime come from the measured cost
# model gridfuse.cost (constants from `make bench`); `gridfuse plan` prices the DAG's jobs
# with the same function, so a plan and the requests cannot disagree.
import functools as _functools

from gridfuse import cost as _cost


@_functools.lru_cache(maxsize=None)
def _job_cost(name, items):
    wc = dict(items)
    product = wc["product"]
    return _cost.estimate(
        name,
        pcfg(product),
        wc,
        covers=lambda s, y: source_covers(product, s, y),
    )


def job_cost(name, wildcards):
    """The cost model's estimate (gridfuse.cost.Cost) of a job of rule ``name``."""
    items = (
        wildcards.items() if hasattr(wildcards, "items") else vars(wildcards).items()
    )
    return _job_cost(name, tuple(sorted(items)))


def cost_threads(name):
    """``threads:`` of rule ``name`` from the cost model."""
    return lambda wc: job_cost(name, wc).threads


def cost_mem(name):
    """``mem_mb`` from the cost model (the modelled peak with margin, grown per retry)."""
    return lambda wc, attempt: job_cost(name, wc).mem_mb(attempt)


def cost_runtime(name):
    """``runtime`` (min) from the cost model (the modelled wall time at the job's threads, after
    any --max-threads / --cores cap, with margin, grown per retry)."""
    return lambda wc, threads, attempt: job_cost(name, wc).runtime_min(attempt, threads)


# ---------------------------------------------------------------------------------------
# SO2 demo synthesis and ingest (synth_so2.smk, ingest_so2.smk) and static layers (static.smk).
def synth_so2_products():
    return [p for p in products_of("so2") if is_synthetic(p)]


def synth_days(product):
    start, end = period(product)
    return (end - start).days + 1


def ingest_folders(product, source, year):
    """Folders an ingest job searches: the year's, and its neighbours' when the path has
    {year} (a product day may start on the previous UTC day or end on the next one)."""
    if is_synthetic(product):
        return [res(product, "raw", source)]
    path = source_cfg(product, source).get("path") or res(product, "raw", source)
    if "{year}" not in path:
        return [path]
    return [path.format(year=y) for y in (int(year), int(year) - 1, int(year) + 1)]


def input_qc_limits(product, source):
    """QC limits of a source: the product's input_qc, overridden key by key by the
    source's qc (ranges merged per variable)."""
    base = dict(pcfg(product)["input_qc"])
    own = {
        k: v
        for k, v in source_cfg(product, source).get("qc", {}).items()
        if v is not None
    }
    ranges = {**base.get("ranges", {}), **own.get("ranges", {})}
    return {**base, **own, "ranges": ranges}


def ingest_job(product, source, year):
    """Everything an ingest job needs from the config (reaches the script via params)."""
    c = source_cfg(product, source)
    first, last = source_coverage(product, source)
    return {
        "source": source,
        "format": c["format"],
        "covers": source_covers(product, source, year),
        "coverage": [str(first or ""), str(last or "")],
        "folders": ingest_folders(product, source, year),
        "margin": c["margin"],
        "options": {
            k: v
            for k, v in c.items()
            if k not in ("path", "url", "first_year", "last_year", "margin", "qc")
        },
        "limits": input_qc_limits(product, source),
        "grid": pcfg(product)["grid"],
        "start": pcfg(product)["period"]["start"],
        "end": pcfg(product)["period"]["end"],
        "utc_start_hour": pcfg(product)["day_window"]["utc_start_hour"],
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
    if PLANNING:
        return []
    return [spec["path"] for spec in static_layers(wildcards.product).values()]
