"""What every command shares: the Typer apps, consoles, running an async job, errors, output."""

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from postengine import migrate
from postengine.auth import keys as key_service
from postengine.config import Settings
from postengine.db import Database

T = TypeVar("T")

app = typer.Typer(help="postengine: AI image generation for social media, self-hosted.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
credits_app = typer.Typer(help="AI credits.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
app.add_typer(db_app, name="db")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class CommandError(Exception):
    """A mistake of the operator's: printed as one line, exit code 1."""


def run_job(job: Callable[[Settings, Database], Coroutine[Any, Any, T]], *, upgrade: bool = True) -> T:
    settings = load_settings()

    async def main() -> T:
        db = Database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        try:
            if upgrade and settings.is_sqlite:
                await migrate.upgrade(db)
            return await job(settings, db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except (CommandError, ValueError, LookupError, key_service.KeyLimitReached) as exc:
        fail(exc.args[0] if exc.args else str(exc))


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, or a one-line error naming the variable that is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"PE_{str(err['loc'][0]).upper()}"
            + (f" ({'.'.join(str(p) for p in err['loc'][1:])})" if len(err["loc"]) > 1 else "")
            + f": {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        fail(f"invalid configuration: {problems}")


def fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def emit(as_json: bool, payload: Any, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        human()
