"""The package version, apart from ``bayesmix/__init__.py`` so that modules can read it
without importing the whole package."""

__version__ = "0.1.0"
