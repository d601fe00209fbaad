"""API keys, scopes and the authenticated caller (API.md §2)."""
