"""Organisations: the tenants that own keys, credits and media."""
