"""Hydra experiments on nncore, tracked in MLflow."""
