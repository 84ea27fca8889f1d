"""Predictive analytics with Spark MLlib, tracked and registered in MLflow.

- :mod:`.features`: per-source forecasting features over the curated events (the same
  feature definitions the online detector uses, :mod:`lakepulse.anomaly.features`), per-source
  scaling and the time split;
- :mod:`.training`: the models (linear regression baseline, gradient-boosted trees), their
  evaluation against seasonal-naive (MAE, RMSE, MASE) and the MLflow run that records it all;
- :mod:`.registry`: champion/challenger aliases and the promotion rule;
- :mod:`.drift`: how far live data has moved from what the champion was trained on;
- :mod:`.scoring`: the live scoring of events with the champion (forecasts, anomaly scores).
"""
