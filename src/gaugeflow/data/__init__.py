"""Datasets on manifolds: synthetic benchmarks and offline real-data loaders."""
from .base import ManifoldData, split_indices

__all__ = ["ManifoldData", "split_indices"]
