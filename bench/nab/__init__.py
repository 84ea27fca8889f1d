"""NAB benchmark of Lakepulse's anomaly detector: ``python -m bench.nab`` (see runner.py)."""
