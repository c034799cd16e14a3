"""Quotas, budgets and rate limits: one interface, in-process and Redis backends."""
