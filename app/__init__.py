"""Autopack: governed, zero-intervention build runs as a GitHub App."""

import importlib.metadata


def installed_version() -> str:
    """The installed distribution's version (`autopack --version`, the User-Agent)."""
    try:
        return importlib.metadata.version("autopack")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
