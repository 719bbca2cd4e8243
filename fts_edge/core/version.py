"""The toolkit's version, recorded in every artifact's bundle (one place: pyproject reads it)."""
__version__ = "0.1.0"
