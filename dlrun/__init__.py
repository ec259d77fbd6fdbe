"""dlrun: a YAML-driven experiment runner for Keras."""

__version__ = "0.1.0"
