"""The media library: stored files, their rows, and the public `/cdn` URLs."""
