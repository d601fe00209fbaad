"""The `postengine` command line: serve, and the administration that has no HTTP endpoint (keys,
organisations, credits). Every command takes `--json` for scripts."""

from postengine.cli import accounts, admin, providers, serve, worker  # noqa: F401  (importing them registers their commands)
from postengine.cli.common import app
from postengine.cli.serve import ensure_demo

__all__ = ["app", "ensure_demo", "main"]


def main() -> None:
    app()
