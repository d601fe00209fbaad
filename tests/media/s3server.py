"""A real S3-protocol server for the tests: moto's server mode (`moto_server`), on loopback.

One server process per test session, started on a free port and stopped at the end; each test run
gets its own bucket (`pe-test-<random>`), emptied and removed afterwards, so parallel runs never see
each other's objects. `moto[server]` is a test dependency: if the server cannot be started the tests
fail (in CI and elsewhere alike), since nothing outside the venv is needed.

What moto does not do: it does not check the signature or the expiry of presigned URLs (its IAM
checks read the Authorization header only), so those are checked with botocore's own SigV4 signer
in `test_s3_storage.py`, not by asking the server.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ACCESS_KEY_ID = "pe-test-access-key"
SECRET_ACCESS_KEY = "pe-test-secret-access-key-0123456789"
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str

    def object_url(self, key: str) -> str:
        return f"{self.endpoint}/{self.bucket}/{key}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _moto_server() -> str:
    found = Path(sys.executable).with_name("moto_server")
    if not found.exists():
        pytest.fail(f"moto_server is not installed next to {sys.executable} (pip install 'moto[server]')")
    return str(found)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    process = subprocess.Popen(  # our own venv's executable
        [_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited with {process.returncode} before answering")
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=1.0).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer on {endpoint} within {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def s3_server(s3_endpoint: str) -> Iterator[S3Server]:
    """This run's bucket on the moto server; emptied and deleted at the end."""
    import boto3  # moto's own dependency: only for creating and removing the bucket

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    bucket = f"pe-test-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=bucket)
    try:
        yield S3Server(s3_endpoint, bucket)
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


def _client(server: S3Server) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def head_object(server: S3Server, key: str) -> dict[str, Any]:
    """The object's metadata as S3 reports it (HeadObject through boto3, not the code under test)."""
    found: dict[str, Any] = _client(server).head_object(Bucket=server.bucket, Key=key)
    return found


def get_object(server: S3Server, key: str) -> bytes:
    data: bytes = _client(server).get_object(Bucket=server.bucket, Key=key)["Body"].read()
    return data


def list_keys(server: S3Server, prefix: str = "") -> list[str]:
    """Every key in the bucket under `prefix` (a plain ListObjectsV2, not through the code under test)."""
    client = _client(server)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys
