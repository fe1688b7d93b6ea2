"""Datasets on manifolds: synthetic benchmarks and offline real-data loaders."""
from .base import ManifoldData, split_indices
from .frames import backbone_frames, protein_frames
from .real import MissingExtraError, cities50, latlon_to_xyz, protein_angles, quakes, world_cities, xyz_to_latlon
from .gmm import gaussian_mixture, gmm_means, sample_gaussian_mixture
from .mesh import eigenfunction_mixture, mesh_points
from .synthetic import tangent_frame, wrapped_mixture

__all__ = ["ManifoldData", "wrapped_mixture", "tangent_frame", "split_indices", "gaussian_mixture", "gmm_means", "sample_gaussian_mixture",
    "eigenfunction_mixture", "mesh_points", "MissingExtraError", "cities50", "latlon_to_xyz", "protein_angles", "protein_frames", "backbone_frames", "quakes", "world_cities", "xyz_to_latlon",
]
