"""The package version (a leaf, so any layer can read it)."""

__version__ = "0.1.0"
