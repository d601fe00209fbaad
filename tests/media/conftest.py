"""Fixtures of the media tests: the S3-protocol server (`s3server`)."""

from tests.media.s3server import s3_endpoint, s3_server

__all__ = ["s3_endpoint", "s3_server"]
