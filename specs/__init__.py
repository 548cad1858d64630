"""The TLA+ specs, their models and manifest, shipped as package data (see README.md)."""
