"""Datasets: raw public files -> the frozen Parquet contract of DESIGN.md."""
