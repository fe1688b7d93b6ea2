"""Neural velocity fields on manifolds: the plain, gauge and higher gauge flow models (SPEC §5)."""
from .flows import FlowModel, PlainFlow
from .gauge import GaugeFlow, gauge_contraction
from .higher import HigherGaugeFlow, higher_gauge_contraction
from .networks import MLP, TimeWeight, count_parameters, time_column

__all__ = [
    "FlowModel",
    "PlainFlow",
    "GaugeFlow",
    "HigherGaugeFlow",
    "MLP",
    "TimeWeight",
    "count_parameters",
    "time_column",
    "gauge_contraction",
    "higher_gauge_contraction",
]
