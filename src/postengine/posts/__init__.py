"""Posts and scheduled publishing (API.md §7)."""
