"""Product kinds: everything that differs between a precipitation and an SO2 product.

One :class:`KindSpec` per kind, in :data:`KINDS`.  Code that needs a fact of a kind (the
variable's CF attributes, how hours become a day, which station checks apply, which static
layers the product uses, how daily GeoTIFFs are named, which model family builds it) asks the
spec instead of testing ``kind == "precip"``.  A new kind is one new entry here (plus its
model family), and the config schema's ``kind`` enum.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["KindSpec", "StationRules", "KINDS", "get_kind", "kind_of_variable"]


@dataclass(frozen=True)
class StationRules:
    """How station observations of a kind are quality-controlled and aggregated to days.

    Attributes
    ----------
    aggregation : {"sum", "mean"}
        Hours to a product day: precipitation totals are summed, concentrations averaged.
    stuck_ignores_zero : bool
        A run of zeros is not "stuck" (dry spells are real for precipitation).
    drop_non_positive : bool
        Values <= 0 are impossible and removed (concentrations).
    reference_298k : bool
        Values before the configured ``harmonize_date`` may be converted from the 273 K to
        the 298 K reference state (``stations.qc.harmonize_298k``; CNEMC SO2).
    hourly_max_key : str
        ``stations.qc`` key bounding hourly values before aggregation.
    wet_median_key : str or None
        ``stations.qc`` key bounding the median of the positive daily values of the whole
        table (precipitation reported in 0.1 mm as mm stays mostly inside the range but its
        wet days are ten times too large); None: no such check.
    """

    aggregation: str
    stuck_ignores_zero: bool
    drop_non_positive: bool
    reference_298k: bool
    hourly_max_key: str
    wet_median_key: str | None = None


@dataclass(frozen=True)
class KindSpec:
    """The facts of one product kind.

    Attributes
    ----------
    name : str
        The config's ``kind`` value.
    variable : str
        Name of the product variable in NetCDF files (and prefix of daily GeoTIFF names).
    units : str
        UDUNITS string of the variable.
    standard_name, long_name, cell_methods : str
        CF attributes of the daily variable (``cell_methods`` over the product day).
    stations : StationRules
        Station QC and aggregation rules.
    static_layers : tuple of str
        Static layer keys (``gridfuse.static.LAYERS``) the product uses; the synthetic demo
        writes exactly these.
    model_family : str
        Family of the main model: ``mpfm`` (network fusion) or ``lightgbm`` (tabular).
    models : tuple of str
        ``scores.csv`` names of the product (precip: ``product``, the published variant), the
        main model and its model baselines, in the order reports list them first.
    held_out : {"evaluation_stations", "out_of_fold"}
        Where the report's held-out scatter comes from: the product files at the evaluation
        stations (held out of training) or the site_cv out-of-fold predictions.
    sources_in_reports : bool
        The sources estimate the product variable on the product grid, so the reports map
        and score them beside the product (precipitation; not the SO2 predictors).
    reports : tuple of str
        Report figures (``report/<name>.png``) a product of the kind gets.
    display_units, colormap : str
        Units on figure axes and colour bars, and the matplotlib colour map of its maps.
    geotiff_template : str
        Name of a day's GeoTIFF, formatted with ``day`` (a date).
    """

    name: str
    variable: str
    units: str
    standard_name: str
    long_name: str
    cell_methods: str
    stations: StationRules
    static_layers: tuple[str, ...]
    model_family: str
    models: tuple[str, ...]
    held_out: str
    sources_in_reports: bool
    reports: tuple[str, ...]
    display_units: str
    colormap: str
    geotiff_template: str = field(default="{variable}_{day:%Y%m%d}.tif")

    @property
    def cf_attrs(self) -> dict[str, str]:
        """CF attributes of the product variable."""
        return {
            "units": self.units,
            "standard_name": self.standard_name,
            "long_name": self.long_name,
            "cell_methods": self.cell_methods,
        }

    def geotiff_name(self, day: _dt.date) -> str:
        """File name of the GeoTIFF of ``day`` (``.gz`` is appended by the writer if asked)."""
        return self.geotiff_template.format(variable=self.variable, day=day)


KINDS: dict[str, KindSpec] = {
    "precip": KindSpec(
        name="precip",
        variable="precip",
        units="mm day-1",
        # a daily total in mm/day is the day's mean rate: CF pairs a rate with "time: mean"
        # (a total would be lwe_thickness_of_precipitation_amount in mm with "time: sum")
        standard_name="lwe_precipitation_rate",
        long_name="precipitation (daily total, as mean rate over the product day)",
        cell_methods="time: mean",
        stations=StationRules(
            aggregation="sum",
            stuck_ignores_zero=True,
            drop_non_positive=False,
            reference_298k=False,
            hourly_max_key="max_hourly_value",
            wet_median_key="max_wet_median",
        ),
        static_layers=("dem",),
        model_family="mpfm",
        models=("product", "mpfm", "cnn3d", "biconvlstm"),
        held_out="evaluation_stations",
        sources_in_reports=True,
        reports=("maps", "scatter", "scores", "interpolation", "training"),
        display_units="mm/day",
        colormap="YlGnBu",
    ),
    "so2": KindSpec(
        name="so2",
        variable="so2",
        units="ug m-3",
        standard_name="mass_concentration_of_sulfur_dioxide_in_air",
        long_name="daily mean surface SO2 concentration (298 K reference state)",
        cell_methods="time: mean",
        stations=StationRules(
            aggregation="mean",
            stuck_ignores_zero=False,
            drop_non_positive=True,
            reference_298k=True,
            hourly_max_key="max_value",
        ),
        static_layers=("dem", "landcover", "ndvi", "population", "road_density"),
        model_family="lightgbm",
        models=("lightgbm", "lightgbm_plain", "rf_ps", "lstm"),
        held_out="out_of_fold",
        sources_in_reports=False,
        reports=("maps", "scatter", "scores", "ablation"),
        display_units="µg/m³",
        colormap="magma_r",
    ),
}


def get_kind(kind: str | KindSpec) -> KindSpec:
    """The spec of ``kind``; an unknown kind is an error naming the known ones."""
    if isinstance(kind, KindSpec):
        return kind
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown product kind {kind!r}; known: {sorted(KINDS)}") from None


def kind_of_variable(name: str, kinds: Mapping[str, KindSpec] | None = None) -> KindSpec | None:
    """The kind whose product variable is ``name`` (None when no kind writes it)."""
    for spec in (kinds or KINDS).values():
        if spec.variable == name:
            return spec
    return None
