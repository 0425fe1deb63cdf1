"""Shared machinery: registry, errors, paths, hashing, seeding, atomic writes."""
