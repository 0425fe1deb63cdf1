"""One training loop for every learned model (Accelerate: CPU, one GPU or many)."""
