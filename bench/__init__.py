"""The benchmark of issue 3: `make bench` (`python -m bench.run`). Prints figures; it is not a test."""
