# Helpers of the report rules (report.smk): inputs per product kind, report years.
from gridfuse.kinds import KINDS

# product variable of each kind (from the kind spec)
RP_VARIABLE = {name: spec.variable for name, spec in KINDS.items()}


def rp_kind(product):
    return pcfg(product)["kind"]


def rp_products(kind=None):
    ps = products_of(kind) if kind else list(PRODUCTS)
    return "|".join(ps) or "NO_PRODUCT"


def rp_years(product):
    """Product years holding the report days (the first year when none are set)."""
    ys = years(product)
    want = {int(d[:4]) for d in pcfg(product)["report"]["days"]}
    return [y for y in ys if y in want] or ys[:1]


def rp_fields(product, years_):
    """Named lists of yearly files mapped / scored: product, truth (demo), sources (precip)."""
    out = {"product": [res(product, "product", f"{y}.nc") for y in years_]}
    if is_synthetic(product):
        out["truth"] = [res(product, "truth", f"{y}.nc") for y in years_]
    if KINDS[rp_kind(product)].sources_in_reports:
        for s in sources(product):
            out[f"src_{s}"] = [res(product, "downscaled", s, f"{y}.nc") for y in years_]
    return out


def rp_station_files(product):
    return {
        "stations": res(product, "stations", "stations.csv"),
        "observations": res(product, "stations", "daily.parquet"),
    }


def rp_curves(product):
    """Training curves of the networks (precip), one per net x source set."""
    return [
        res(product, "evaluation", f"training_curve_{n}_{k}.csv")
        for n in pm_nets(product)
        for k in pm_sets(product)
    ]
