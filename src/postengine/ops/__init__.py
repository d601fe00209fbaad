"""Operations: health and readiness probes, Prometheus metrics (DESIGN.md §1, docs/deploy.md)."""
