"""Layers shared by models: MLP blocks, feature interactions (cross, attention, ...)."""
