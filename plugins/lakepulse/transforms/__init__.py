"""Pure DataFrame transformations (no I/O): easy to test on small hand-made frames."""
