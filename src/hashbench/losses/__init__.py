"""Losses: one small class per file, each with one job (pytorch-metric-learning style)."""
