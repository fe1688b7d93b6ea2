"""gaugeflow: gauge and higher-gauge flow models on Riemannian manifolds."""
__version__ = "0.1.0"
