"""The ``gridfuse`` command.

``gridfuse plan --configfile FILE [--json]`` prints what a run of the workflow on ``FILE``
costs before anything runs, and without the raw data: each rule's job count, CPU-hours,
GPU-hours, memory request per job and longest job, and the totals.

The job list is the workflow's own DAG (Snakemake's API, every job forced, raw inputs not
required: ``GRIDFUSE_PLAN=1``), and each job is priced by the same function that sets the
rules' ``threads``/``mem_mb``/``runtime`` (``job_cost`` in ``workflow/rules/common.smk``,
i.e. :mod:`gridfuse.cost` with the measured constants), so the plan cannot drift from the
requests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["ConfigError", "Plan", "RulePlan", "main", "make_plan", "validate_config"]

_REPO = Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """A config that does not validate; the message names the key."""


def find_snakefile(path: str | os.PathLike | None = None) -> Path:
    """The workflow's Snakefile: ``path``, ./Snakefile, or the one of this checkout."""
    for p in ([Path(path)] if path else []) + [Path.cwd() / "Snakefile", _REPO / "Snakefile"]:
        if p.is_file():
            return p.resolve()
    raise FileNotFoundError(
        "no Snakefile found (give --snakefile, or run in the repository's folder)"
    )


def validate_config(cfg: Mapping, schema_path: str | os.PathLike) -> dict:
    """Validate ``cfg`` against the workflow's schema, filling defaults; raise
    :class:`ConfigError` naming the first offending key."""
    import copy

    import yaml
    from snakemake.utils import validate

    if not isinstance(cfg, Mapping):
        raise ConfigError(f"the config must be a mapping, found {type(cfg).__name__}")
    schema = yaml.safe_load(Path(schema_path).read_text())
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    def walk(errors):
        for e in errors:
            yield e
            yield from walk(e.context or [])

    errors = list(walk(Draft202012Validator(schema).iter_errors(cfg)))
    # the deepest error names the offending key (a failed value inside a kind-conditional
    # section also fails the section's unevaluatedProperties, one level up)
    err = max(errors, key=lambda e: len(e.absolute_path), default=None)
    if err is not None and len(err.absolute_path) == 0:
        err = best_match(errors)
    if err is not None:
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {err.message}")
    out = copy.deepcopy(dict(cfg))
    validate(out, str(schema_path))  # fills the defaults
    return out


@dataclass
class RulePlan:
    """The cost of one rule's jobs."""

    rule: str
    jobs: int = 0
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    mem_mb: int = 0
    max_job_hours: float = 0.0
    threads: int = 1
    priced: bool = True

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "jobs": self.jobs,
            "cpu_hours": round(self.cpu_hours, 3),
            "gpu_hours": round(self.gpu_hours, 3),
            "mem_mb": self.mem_mb,
            "max_job_hours": round(self.max_job_hours, 3),
        }


@dataclass
class Plan:
    """Every rule's :class:`RulePlan` of one config, and the totals."""

    rules: list[RulePlan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_cpu_hours(self) -> float:
        return sum(r.cpu_hours for r in self.rules)

    @property
    def total_gpu_hours(self) -> float:
        return sum(r.gpu_hours for r in self.rules)

    @property
    def max_job_hours(self) -> float:
        return max((r.max_job_hours for r in self.rules), default=0.0)

    @property
    def jobs(self) -> int:
        return sum(r.jobs for r in self.rules)

    def counts(self) -> dict[str, int]:
        return {r.rule: r.jobs for r in self.rules}

    def to_json(self) -> dict:
        return {
            "total_cpu_hours": round(self.total_cpu_hours, 3),
            "total_gpu_hours": round(self.total_gpu_hours, 3),
            "max_job_hours": round(self.max_job_hours, 3),
            "rules": [r.to_json() for r in self.rules],
        }

    def table(self) -> str:
        head = (
            f"{'rule':<26s} {'jobs':>5s} {'threads':>7s} {'CPU-h':>10s} {'GPU-h':>7s} "
            f"{'mem MB/job':>10s} {'longest job h':>13s}"
        )
        lines = [head, "-" * len(head)]
        for r in self.rules:
            mark = "" if r.priced else "  (requests: no cost model)"
            lines.append(
                f"{r.rule:<26s} {r.jobs:>5d} {r.threads:>7d} {r.cpu_hours:>10.2f} "
                f"{r.gpu_hours:>7.2f} {r.mem_mb:>10d} {r.max_job_hours:>13.2f}{mark}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{'total':<26s} {self.jobs:>5d} {'':>7s} {self.total_cpu_hours:>10.2f} "
            f"{self.total_gpu_hours:>7.2f} {'':>10s} {self.max_job_hours:>13.2f}"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _dag_jobs(configfile: Path, snakefile: Path):
    """The workflow and every job of its DAG for ``configfile`` (all forced, no raw data)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    previous, cwd = os.environ.get("GRIDFUSE_PLAN"), os.getcwd()
    os.environ["GRIDFUSE_PLAN"] = "1"
    try:
        with tempfile.TemporaryDirectory(prefix="gridfuse_plan_") as wd:
            with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
                wf = api.workflow(
                    resource_settings=ResourceSettings(cores=1024),
                    config_settings=ConfigSettings(configfiles=[configfile]),
                    snakefile=snakefile,
                    workdir=Path(wd),
                )._workflow
                wf.dag_settings = DAGSettings(forceall=True)
                wf._prepare_dag(
                    forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True
                )
                wf._build_dag()
                yield wf, list(wf.dag.jobs)
    finally:
        os.chdir(cwd)
        if previous is None:
            os.environ.pop("GRIDFUSE_PLAN", None)
        else:
            os.environ["GRIDFUSE_PLAN"] = previous


def make_plan(configfile: str | os.PathLike, snakefile: str | os.PathLike | None = None) -> Plan:
    """Price every job of the workflow's DAG for ``configfile`` (see the module docstring).

    Raises :class:`ConfigError` for a config that does not validate.
    """
    import yaml

    snakefile = find_snakefile(snakefile)
    configfile = Path(configfile).resolve()
    if not configfile.is_file():
        raise ConfigError(f"config file {configfile} not found")
    try:
        raw = yaml.safe_load(configfile.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{configfile}: not valid YAML: {e}") from None
    validate_config(raw, snakefile.parent / "workflow" / "schemas" / "config.schema.yaml")

    from .cost import NoCostModel
    from .cost import notes as cost_notes

    by_rule: dict[str, RulePlan] = {}
    proxies: dict[str, str] = {}
    notes: list[str] = []
    for wf, jobs in _dag_jobs(configfile, snakefile):
        for product in wf.globals["PRODUCTS"].values():
            notes += [n for n in cost_notes(product) if n not in notes]
        job_cost = wf.globals["job_cost"]
        for job in jobs:
            name = job.rule.name
            if name == "all":
                continue
            r = by_rule.setdefault(name, RulePlan(name))
            r.jobs += 1
            try:
                c = job_cost(name, dict(job.wildcards_dict))
            except NoCostModel:  # a rule without a cost model: priced at its declared requests
                r.priced = False
                hours = float(job.resources.get("runtime", 0) or 0) / 60
                r.threads = max(r.threads, int(job.threads))
                r.cpu_hours += int(job.threads) * hours
                r.mem_mb = max(r.mem_mb, int(job.resources.get("mem_mb", 0) or 0))
                r.max_job_hours = max(r.max_job_hours, hours)
                continue
            if c.proxy:
                proxies[name] = c.proxy
            hours = c.wall_s / 3600
            if c.gpu:
                r.gpu_hours += hours
            r.cpu_hours += c.cpu_hours
            r.threads = max(r.threads, c.threads)
            r.mem_mb = max(r.mem_mb, c.mem_mb())
            r.max_job_hours = max(r.max_job_hours, hours)
    order = sorted(by_rule.values(), key=lambda r: -r.cpu_hours)
    notes += [
        f"{r} priced like {p} (not measured yet: run `make bench`)" for r, p in proxies.items()
    ]
    return Plan(order, notes)


def _plan(args) -> int:
    try:
        plan = make_plan(args.configfile, args.snakefile)
    except ConfigError as e:
        print(f"gridfuse plan: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(plan.to_json(), indent=1))
    else:
        print(f"plan of {args.configfile} (cost constants: see gridfuse/cost_constants.json)")
        print(plan.table())
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gridfuse", description="gridfuse workflow tools")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "plan",
        help="cost of a run (jobs, CPU-/GPU-hours, memory, longest job) without running it",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--configfile", required=True, help="the workflow config (YAML)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--snakefile", default=None, help="the workflow's Snakefile")
    args = ap.parse_args(argv)
    if args.command == "plan":
        return _plan(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
