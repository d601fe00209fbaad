"""Fixtures of the scale-out tests."""

from tests.scaleout.cluster import cluster_factory

__all__ = ["cluster_factory"]
