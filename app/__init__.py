"""Autopack: governed, zero-intervention build runs as a GitHub App."""
