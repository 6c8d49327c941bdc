"""Shared fixtures. The GitHub simulator's fixtures are imported here so every test can use them."""
