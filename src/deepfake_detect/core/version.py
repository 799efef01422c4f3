"""The package version, owned here so that modules below the package root can record it without a cycle."""

__version__ = "0.1.0"
