"""`postengine providers check`: which provider serves each model, and whether its credentials work."""

import asyncio
from typing import Any

import typer
from anyio import CapacityLimiter
from rich.table import Table

from postengine.app import new_http_client
from postengine.cli.common import JsonOpt, app, console, emit, err_console, fail, load_settings
from postengine.generation.providers.registry import (
    ProviderConfigError,
    build_providers,
    chain_names,
    check_all,
    serving,
)

providers_app = typer.Typer(help="Image providers behind the model names.", no_args_is_help=True)
app.add_typer(providers_app, name="providers")


@providers_app.command("check")
def providers_check(
    as_json: JsonOpt = False,
    timeout: float = typer.Option(20.0, help="Seconds to wait for each provider's check."),
) -> None:
    """Check every configured provider (credentials, upstream model ids) and show, for each model,
    the provider that will serve it. Exit code 1 when some model has no working provider. Checks
    make no paid calls."""
    settings = load_settings()
    try:
        chain_names(settings)
    except ProviderConfigError as exc:
        fail(str(exc))

    async def job() -> dict[str, Any]:
        http = new_http_client()
        try:
            providers = build_providers(settings, http, CapacityLimiter(1))
            if not as_json:
                err_console.print(f"checking {', '.join(providers.instances)} …", highlight=False)
            results = await check_all(providers, timeout=timeout)
        finally:
            await http.aclose()
        chosen = serving(providers, results)
        return {
            "providers": {
                name: {"ok": result.ok, "detail": result.detail} for name, result in results.items()
            },
            "models": {
                str(model): {"chain": names, "serving": chosen[model]}
                for model, names in providers.names.items()
            },
        }

    report = asyncio.run(job())

    def human() -> None:
        table = Table("provider", "status", "detail")
        for name, result in report["providers"].items():
            table.add_row(
                name, "[green]ok[/green]" if result["ok"] else "[red]failing[/red]", result["detail"]
            )
        console.print(table)
        models = Table("model", "chain", "served by")
        for model, info in report["models"].items():
            served = info["serving"] or "[red]none passed its check[/red]"
            models.add_row(model, " → ".join(info["chain"]), served)
        console.print(models)

    emit(as_json, report, human)
    if any(info["serving"] is None for info in report["models"].values()):
        raise typer.Exit(1)
