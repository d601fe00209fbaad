"""postengine."""
