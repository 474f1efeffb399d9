# Helpers of the precip_model rules: source-availability sets, model files, resources.
#
# A source-availability set is the sources a year has (1990-1997: ERA5 only; 1998-1999:
# no GLDAS); one network is trained per set needed by the period and chosen per year.
# Set keys are the sources '-'-joined in config order, e.g. "era5-gsmap-imerg-cmorph".

# mpfm_g: MPFM with the gauge channels (the product's gauge-aware network)
PM_NETS = ("mpfm", "mpfm_g", "cnn3d", "biconvlstm")


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


def pm_patches_mb(product):
    """MB of samples/patches.nc in memory: station x day x patch x patch x channel float32
    (Qinghai: 48 gauges x 12,418 days x 15 x 15 x 8 = 4.3 GB)."""
    s = pcfg(product)["samples"]
    chans = len(sources(product)) + 3
    return station_days(product) * s["patch"] ** 2 * chans * 4 / 1e6


def pm_train_mem(product, copies=2.5, attempt=1):
    """Memory (MB) of a training job: the loaded patches, the channel-selected copy and the
    batches (``copies`` x the patches) plus the interpreter and torch."""
    return retry(1500 + copies * pm_patches_mb(product), attempt)


def pm_threads(product):
    """Threads of training/CV: one per 50,000 station-days, 2 to 8 (the cores a GPU job
    gets with the SLURM profile's cpus_per_gpu; capped at --cores locally)."""
    return threads_for(station_days(product), 50_000, lo=2, hi=8)


def pm_predict_mem(product):
    """Memory (MB) of a predict job: the interpreter, torch and the model (1,000 MB) plus
    the engine's peak (gridfuse.predict.predict_memory_mb: two raw blocks with the
    prefetch, the standardized and padded block, activations, output), CPU case."""
    from gridfuse.grid import Grid
    from gridfuse.predict import CPU_BUDGET_MB, predict_memory_mb

    c = pm_mpfm_cfg(product)
    g = Grid.from_config(pcfg(product)["grid"])
    window = pcfg(product)["samples"]["window_days"]
    sizes = {k: c[k] for k in ("conv_channels", "conv_kernel", "hidden", "lstm_kernel")}
    radius = len(sizes["conv_channels"]) * (sizes["conv_kernel"] // 2) + len(
        sizes["hidden"]
    ) * (sizes["lstm_kernel"] // 2) * (window // 2 + 1)
    return 1000 + predict_memory_mb(
        g.shape[0],
        g.shape[1],
        len(sources(product)) + 3,
        time_block=c["predict_days"],
        window=window,
        radius=radius,
        budget_mb=c["predict_mem_mb"] or CPU_BUDGET_MB,
    )


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
