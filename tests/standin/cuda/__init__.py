"""Stand-in package for cuda-python (see cuda/bindings/runtime.py)."""
