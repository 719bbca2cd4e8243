"""Stand-in for pycuda (see driver.py)."""
