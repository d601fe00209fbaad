"""Exact sliding-window rate limits (API.md §3): rules as data, stores behind one interface."""
