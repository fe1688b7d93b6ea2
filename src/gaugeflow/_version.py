"""The package version, in a module of its own so library modules can read it without importing ``gaugeflow``."""
__version__ = "0.1.0"
