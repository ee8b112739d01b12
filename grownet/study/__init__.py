"""Optuna studies over training runs or growth searches (`grownet study`)."""
