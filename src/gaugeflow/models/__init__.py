"""Neural velocity fields on manifolds: the plain, gauge, higher gauge and tensor gauge flow models (docs/math.md §5)."""
from .flows import FlowModel, PlainFlow
from .gauge import GaugeFlow, contract_direction, gauge_contraction
from .crossed_module import crossed_module_features, crossed_module_projected
from .higher import HigherGaugeFlow, higher_gauge_contraction
from .tensor import SpaceTimeWeight, TensorGaugeFlow, tensor_contraction
from .networks import MLP, TimeWeight, count_parameters, time_column

__all__ = [
    "FlowModel",
    "PlainFlow",
    "GaugeFlow",
    "HigherGaugeFlow",
    "TensorGaugeFlow",
    "SpaceTimeWeight",
    "tensor_contraction",
    "MLP",
    "TimeWeight",
    "count_parameters",
    "time_column",
    "gauge_contraction",
    "higher_gauge_contraction",
    "crossed_module_projected",
    "crossed_module_features",
    "contract_direction",
]
