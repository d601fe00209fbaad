"""Domain-free helpers: ids, crypto, clock, image encoding."""
