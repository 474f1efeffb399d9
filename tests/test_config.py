"""The config schema: defaults filled, bad configs stopped before any job with the key path."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _load(name="config.yaml"):
    return yaml.safe_load((ROOT / name).read_text())


def _walk(schema, path="$"):
    """Yield (path, subschema, raw) for every property in the schema, following local $refs,
    ``allOf`` members and the ``then`` branches of the kind conditionals (whose own property
    entries only refine keys documented at the base, so they are descended, not yielded)."""
    defs = yaml.safe_load(SCHEMA.read_text())["$defs"]

    def resolve(s):
        while isinstance(s, dict) and "$ref" in s:
            s = {**defs[s["$ref"].split("/")[-1]], **{k: v for k, v in s.items() if k != "$ref"}}
        return s

    stack = [(path, schema, False)]
    while stack:
        p, s, refine = stack.pop()
        s = resolve(s)
        if not isinstance(s, dict):
            continue
        for k, sub in s.get("properties", {}).items():
            stack.append((f"{p}.{k}", sub, False))
            if not refine:
                yield f"{p}.{k}", resolve(sub), sub
        for member in s.get("allOf", []):
            stack.append((p, member, False))
            if isinstance(member, dict) and "then" in member:
                stack.append((p, member["then"], True))
        if isinstance(s.get("additionalProperties"), dict):
            stack.append((f"{p}.*", s["additionalProperties"], False))
        if isinstance(s.get("items"), dict):
            stack.append((f"{p}[]", s["items"], False))


def test_walk_reaches_the_kind_sections():
    paths = {p for p, _, _ in _walk(yaml.safe_load(SCHEMA.read_text()))}
    for p in (
        "$.products.*.model.mpfm.epochs",
        "$.products.*.model.lightgbm.num_leaves",
        "$.products.*.stations.qc.harmonize_date",
        "$.products.*.cv.thresholds",
        "$.products.*.synthetic.so2.n_stations",
        "$.products.*.samples.patch",
    ):
        assert p in paths, p


@pytest.mark.parametrize("name", ["config.yaml", "configs/test.yaml"])
def test_shipped_configs_validate(name):
    cfg = _load(name)
    validate(cfg, str(SCHEMA))
    for prod in cfg["products"].values():
        assert prod["downscale"]["method"] in ("nearest", "bilinear", "cubic")
        assert "evaluation" in prod["stations"]


def test_every_key_has_default_and_description():
    schema = yaml.safe_load(SCHEMA.read_text())
    required_anywhere = {
        "kind",
        "grid",
        "period",
        "west",
        "south",
        "east",
        "north",
        "start",
        "end",
        "format",
        "products",
    }
    missing = []
    for path, sub, raw in _walk(schema):
        key = path.rsplit(".", 1)[-1]
        has_desc = "description" in sub or "description" in raw
        has_default = "default" in sub or "default" in raw or key in required_anywhere
        if not (has_desc and has_default):
            missing.append(path)
    assert not missing, f"schema keys without default/description: {missing}"


def test_demo_defaults_filled():
    cfg = _load()
    validate(cfg, str(SCHEMA))
    p = cfg["products"]["demo_precip"]
    assert p["outputs"]["years"] == []
    assert p["sources"]["era5"]["margin"] == 0.5
    assert p["stations"]["qc"]["min_valid_hours"] == 20


def _run_dry(tmp_path, cfg):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "--cores",
            "1",
            "-s",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(f),
            "--directory",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (
            lambda c: c["products"]["demo_precip"]["downscale"].update(method="linear"),
            ["'linear' is not one of", "['products']['demo_precip']['downscale']['method']"],
        ),
        (
            lambda c: (
                c["products"]["demo_so2"]["grid"].pop("res")
                and c["products"]["demo_so2"]["grid"].pop("north")
            ),
            ["'north' is a required property", "['products']['demo_so2']['grid']"],
        ),
        (
            lambda c: c["products"]["demo_precip"].update(kind="rain"),
            ["'rain' is not one of", "['products']['demo_precip']['kind']"],
        ),
        (
            lambda c: c["products"]["demo_precip"].update(periode={}),
            ["Additional properties are not allowed", "periode"],
        ),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, mutate, expect):
    cfg = copy.deepcopy(_load())
    mutate(cfg)
    out = _run_dry(tmp_path, cfg)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    for e in expect:
        assert e in text, text[-3000:]
    assert "Building DAG" not in text and "Job stats" not in text
    assert not (tmp_path / "results").exists()


def test_demo_dry_run_builds_dag():
    out = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]


def test_schema_defaults_of_code_sections_are_generated():
    """Sections marked x-defaults-from take their defaults from the dataclasses (one place)."""
    from gridfuse.config import sync_schema_defaults

    text = SCHEMA.read_text()
    assert "x-defaults-from: [gridfuse.synth.so2:SO2Knobs]" in text
    synced, changes = sync_schema_defaults(text)
    assert changes == [], f"run: python -m gridfuse.config {SCHEMA}\n" + "\n".join(changes)
    stale = text.replace(
        "n_stations: {type: integer, minimum: 1, default: 60,",
        "n_stations: {type: integer, minimum: 1, default: 61,",
    )
    fixed, changes = sync_schema_defaults(stale)
    assert changes == ["so2.n_stations: 61 -> 60"] and fixed == text
