# Helpers of the precip_model rules: source-availability sets, model files, resources.
#
# A source-availability set is the sources a year has (1990-1997: ERA5 only; 1998-1999:
# no GLDAS); one network is trained per set needed by the period and chosen per year.
# Set keys are the sources '-'-joined in config order, e.g. "era5-gsmap-imerg-cmorph".

# mpfm_g: MPFM with the gauge channels (the product's gauge-aware network)
PM_NETS = ("mpfm", "mpfm_g", "cnn3d", "biconvlstm")
# the linear merges among the baselines (the registry's gauge-only ones: model_names)
from gridfuse.models.precip_baselines import LINEAR as PM_LINEAR


def pm_products():
    return "|".join(products_of("precip")) or "NO_PRODUCT"


def pm_year_sources(product, year):
    """Sources covering a year (the downscaled files that are not absent markers)."""
    return [s for s in sources(product) if source_covers(product, s, year)]


def pm_set(product, year):
    return "-".join(pm_year_sources(product, year))


def pm_sets(product):
    return list(dict.fromkeys(pm_set(product, y) for y in all_years(product)))


def pm_year_sets(product):
    return {int(y): pm_year_sources(product, y) for y in all_years(product)}


def pm_nets(product):
    base = pcfg(product)["model"]["baselines"]["models"]
    return ["mpfm", "mpfm_g"] + [n for n in PM_NETS[2:] if n in base]


def pm_model(product, net, key):
    return res(product, "model", net, f"{key}.pt")


def pm_models(product):
    return [pm_model(product, n, k) for n in pm_nets(product) for k in pm_sets(product)]


def pm_downscaled(product, year, srcs=None):
    """Downscaled files of a year's set for the year and its neighbours (window edges)."""
    ys = [
        y for y in (int(year) - 1, int(year), int(year) + 1) if y in all_years(product)
    ]
    srcs = pm_year_sources(product, year) if srcs is None else srcs
    return {s: [res(product, "downscaled", s, f"{y}.nc") for y in ys] for s in srcs}


def pm_osse(product, scheme):
    c = pcfg(product)["cv"]["schemes"]
    return is_synthetic(product) and scheme in c


def pm_mpfm_cfg(product):
    return pcfg(product)["model"]["mpfm"]


# model.mpfm keys that only the gridded inference (predict_precip) reads
PM_INFERENCE_KEYS = (
    "predict_tile",
    "predict_days",
    "predict_precision",
    "predict_mem_mb",
)


def pm_train_cfg(product):
    """model.mpfm without the inference settings: what training a network reads (changing
    an inference setting re-trains nothing)."""
    return {k: v for k, v in pm_mpfm_cfg(product).items() if k not in PM_INFERENCE_KEYS}


def pm_provenance(product):
    """The config sections a product file's values depend on (hashed into its provenance):
    not the inference, evaluation or report settings."""
    c = pcfg(product)
    keys = ("kind", "grid", "period", "day_window", "sources", "stations", "static")
    out = {k: c[k] for k in keys if k in c}
    for k in ("downscale", "samples"):
        out[k] = c.get(k, {})
    out["mask"] = mask_spec(product)
    out["model"] = {"mpfm": pm_train_cfg(product), "product": c["model"]["product"]}
    return out


def pm_spec(product, key):
    return res(product, "model", "product", f"{key}.json")


def pm_folds(product):
    """site_cv fold statistics files (one job per fold), when site_cv is a scheme."""
    c = pcfg(product)["cv"]
    if "site_cv" not in c["schemes"]:
        return []
    return [
        res(product, "evaluation", "site_cv", f"fold_{k}.csv")
        for k in range(c["n_splits"])
    ]


def pm_baselines(product):
    """Baselines fitted from station samples (not networks): linear, tabular, gauge-only."""
    return [
        m for m in pcfg(product)["model"]["baselines"]["models"] if m not in PM_NETS
    ]


def pm_refit(product):
    """Networks refitted in every site_cv fold (the product needs mpfm and mpfm_g)."""
    c = pcfg(product)["cv"]
    nets = list(c["site_cv_deep"])
    if c["site_cv_product"]:
        nets += [n for n in ("mpfm", "mpfm_g") if n not in nets]
    return nets
