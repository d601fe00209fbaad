"""postengine: a self-hostable server for AI image generation for social media."""

__version__ = "0.1.0"
