"""Seeded, reproducible equipment models for carding, spinning and flat knitting, and the plant they stand in."""
