"""Checks of a workflow configuration beyond what its JSON Schema can say.

The workflow validates the config against ``workflow/schemas/config.schema.yaml`` (types,
ranges, unknown keys, defaults) and then calls :func:`check_config` for what a schema cannot
express: dates that exist (``format: date`` is not checked by the validator the workflow
uses), a period that ends after it starts, at least one enabled product, years and report
days inside the period, coverage years in order.  Every problem is reported with the key's
path (``products.<name>.period.end``) and what was expected; all problems are reported at
once.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "check_config",
    "config_problems",
    "dataclass_defaults",
    "sync_schema_defaults",
]


class ConfigError(ValueError):
    """A configuration that cannot run; the message lists every problem with its key."""


def _date(value: Any) -> _dt.date | None:
    try:
        return _dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def _walk_dates(schema: Mapping, cfg: Any, path: str, defs: Mapping) -> Iterator[tuple[str, Any]]:
    """(path, value) of every config value whose schema is ``$defs/date``.

    Follows ``properties``, ``additionalProperties``, ``items``, ``$ref`` and the ``then``
    branches of ``allOf`` (the kind-conditional sections).
    """

    def resolve(s):
        while isinstance(s, Mapping) and "$ref" in s:
            name = s["$ref"].split("/")[-1]
            if name == "date":
                return "date"
            s = {**defs[name], **{k: v for k, v in s.items() if k != "$ref"}}
        return s

    def go(s, value, p):
        s = resolve(s)
        if s == "date":
            yield p, value
            return
        if not isinstance(s, Mapping):
            return
        if isinstance(value, list) and isinstance(s.get("items"), Mapping):
            for i, v in enumerate(value):
                yield from go(s["items"], v, f"{p}[{i}]")
        if not isinstance(value, Mapping):
            return
        parts = [s]
        for branch in s.get("allOf", []):
            parts += [resolve(branch), resolve(branch.get("then", {}))]
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            props = part.get("properties", {})
            for k, ks in props.items():
                if k in value:
                    yield from go(ks, value[k], f"{p}.{k}")
            extra = part.get("additionalProperties")
            if isinstance(extra, Mapping):
                for k in value:
                    if k not in props:
                        yield from go(extra, value[k], f"{p}.{k}")

    seen = set()
    for p, v in go(schema, cfg, path):
        if p not in seen:  # a key under several branches is reported once
            seen.add(p)
            yield p, v


def config_problems(cfg: Mapping, schema: Mapping | None = None) -> list[str]:
    """Every problem of a (schema-validated, defaults filled) config, as messages.

    ``schema`` (the loaded config schema) lets every ``$defs/date`` value be checked as a
    real date, wherever the schema puts one.
    """
    problems: list[str] = []
    if schema is not None:
        for p, v in _walk_dates(schema, cfg, "config", schema.get("$defs", {})):
            if _date(v) is None:
                problems.append(f"{p}: {v!r} is not a date (expected YYYY-MM-DD, a real day)")
    products = cfg.get("products") or {}
    if not products:
        problems.append("config.products: no product configured (expected at least one)")
    elif not any(p.get("enabled", True) for p in products.values()):
        problems.append(
            f"config.products: every product is disabled ({sorted(products)}); enable one"
        )
    for name, prod in products.items():
        problems += _product_problems(f"config.products.{name}", prod)
    return problems


def _product_problems(key: str, prod: Mapping) -> list[str]:
    out: list[str] = []
    per = prod.get("period", {})
    start, end = _date(per.get("start")), _date(per.get("end"))
    if start and end and end < start:
        out.append(f"{key}.period.end: {end} is before period.start {start}")
    g = prod.get("grid", {})
    for lo, hi in (("west", "east"), ("south", "north")):
        if lo in g and hi in g and not g[hi] > g[lo]:
            out.append(f"{key}.grid.{hi}: {g[hi]} must be greater than grid.{lo} {g[lo]}")
    if "res" in g and {"west", "east", "south", "north"} <= set(g):
        if g["res"] > min(g["east"] - g["west"], g["north"] - g["south"]):
            out.append(f"{key}.grid.res: {g['res']} is larger than the grid itself")
    if start and end:
        years = {y for y in range(start.year, end.year + 1)}
        for i, y in enumerate(prod.get("outputs", {}).get("years", [])):
            if int(y) not in years:
                out.append(f"{key}.outputs.years[{i}]: {y} is outside the period {start}..{end}")
        for i, d in enumerate(prod.get("report", {}).get("days", [])):
            day = _date(d)
            if day and not start <= day <= end:
                out.append(f"{key}.report.days[{i}]: {d} is outside the period {start}..{end}")
    for src, sc in (prod.get("sources") or {}).items():
        first, last = sc.get("first_year", 1900), sc.get("last_year", 2100)
        if first > last:
            out.append(f"{key}.sources.{src}.last_year: {last} is before first_year {first}")
        fd = sc.get("first_date", "")
        if fd and _date(fd) is None:
            out.append(f"{key}.sources.{src}.first_date: {fd!r} is not a date (YYYY-MM-DD)")
    so2 = (prod.get("synthetic") or {}).get("so2") or {}
    for k in ("heating_start", "heating_end"):
        if k in so2 and _date(f"2000-{so2[k]}") is None:  # 2000: a leap year, 02-29 exists
            out.append(f"{key}.synthetic.so2.{k}: {so2[k]!r} is not a day of the year (MM-DD)")
    if so2 and so2.get("background_share", 0) + so2.get("town_share", 0) >= 1:
        out.append(
            f"{key}.synthetic.so2: background_share + town_share must stay below 1 "
            f"(got {so2.get('background_share', 0)} + {so2.get('town_share', 0)})"
        )
    return out


def check_config(cfg: Mapping, schema: Mapping | None = None) -> None:
    """Raise :class:`ConfigError` listing every problem of ``cfg`` (see :func:`config_problems`)."""
    problems = config_problems(cfg, schema)
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


# ---------------------------------------------------------------------- defaults from code
# A schema section marked ``x-defaults-from: [module:Class, ...]`` takes the ``default`` of
# each of its keys that is a field of one of those dataclasses from the dataclass: the code
# holds the default, the schema's copy is generated (``python -m gridfuse.config FILE``) and
# a test fails when it is stale.
_MARK = re.compile(r"^(?P<indent>\s*)x-defaults-from:\s*\[(?P<specs>[^\]]*)\]\s*$")
_PROP = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*): \{(?P<body>.*)\}\s*$")
_DEFAULT = re.compile(r"default: (?P<value>.*?)(?=, description:)")


def dataclass_defaults(spec: str) -> dict[str, Any]:
    """``{field: default}`` of the dataclass ``module:Class`` (fields without one left out)."""
    import dataclasses
    import importlib

    module, _, name = spec.strip().partition(":")
    cls = getattr(importlib.import_module(module), name)
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _flow(value: Any) -> str:
    """A YAML flow scalar/sequence for a default (JSON is valid YAML)."""
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def sync_schema_defaults(text: str) -> tuple[str, list[str]]:
    """The schema text with the defaults of ``x-defaults-from`` sections taken from code.

    Returns the new text and one line per changed default (``section.key: old -> new``).
    Only one-line ``key: {..., default: X, description: ...}`` entries are rewritten; a
    default equal in value is left as written.
    """
    lines = text.split("\n")
    changes: list[str] = []
    for i, line in enumerate(lines):
        m = _MARK.match(line)
        if not m:
            continue
        indent = len(m.group("indent"))
        defaults: dict[str, Any] = {}
        for spec in m.group("specs").split(","):
            if spec.strip():
                defaults.update(dataclass_defaults(spec))
        section = lines[i - 1].strip().rstrip(":") if i else "?"
        j = i + 1
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) >= indent
        ):
            p = _PROP.match(lines[j])
            if p and len(p.group("indent")) == indent + 2 and p.group("key") in defaults:
                d = _DEFAULT.search(p.group("body"))
                key, new = p.group("key"), defaults[p.group("key")]
                if d is None:
                    raise ValueError(
                        f"schema line {j + 1}: {key} has no 'default: ..., description:'"
                    )
                old = yaml.safe_load(d.group("value"))
                if old != (list(new) if isinstance(new, tuple) else new):
                    lines[j] = lines[j].replace(d.group(0), f"default: {_flow(new)}", 1)
                    changes.append(f"{section}.{key}: {d.group('value')} -> {_flow(new)}")
            j += 1
    return "\n".join(lines), changes


def main(argv: list[str] | None = None) -> int:
    """``python -m gridfuse.config SCHEMA [--check]``: write (or check) the code defaults."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("schema", type=Path)
    ap.add_argument("--check", action="store_true", help="exit 1 if a default is stale")
    args = ap.parse_args(argv)
    text, changes = sync_schema_defaults(args.schema.read_text())
    for c in changes:
        print(c)
    if args.check:
        return 1 if changes else 0
    if changes:
        args.schema.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
