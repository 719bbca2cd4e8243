"""Stand-in for cuda.bindings (see runtime.py)."""
