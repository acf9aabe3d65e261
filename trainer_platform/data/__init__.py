"""Datasets: sources converted to verl parquet, validation, and the built-in tiny datasets."""
