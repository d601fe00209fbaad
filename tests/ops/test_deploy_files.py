"""Static consistency of the deployment files (`Dockerfile`, `.dockerignore`, `deploy/compose.yaml`,
`deploy/Caddyfile`, `deploy/env.example`, `docs/deploy.md`) with the code they run.

No Docker daemon is needed: the files are parsed and checked against the CLI (every `postengine …`
command parses with typer's own parser), the settings (every `PE_*` variable is a real one), the
served routes and each other (service names, ports, bucket). The last test builds the wheel the
Dockerfile builds and runs it, installed (not editable), against SQLite: see its docstring."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import typer.main
import yaml

from postengine.cli import app as cli_app
from postengine.config import Settings
from postengine.media.storage import storage_from_settings
from postengine.media.storage.base import PUBLIC_PREFIX
from postengine.ops.endpoints import router as ops_router

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CADDYFILE = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
ENV_EXAMPLE = (DEPLOY / "env.example").read_text(encoding="utf-8")
DEPLOY_DOC = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
# The variables compose itself expands (`${VAR}`, `${VAR:-default}`, `${VAR:?message}`); `$$` is a
# literal `$` for the container's shell.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SCALE_OUT_SETTINGS = {
    "PE_DATABASE_URL",
    "PE_REDIS_URL",
    "PE_STORAGE_URL",
    "PE_PUBLIC_MEDIA_URL",
    "PE_SECRET_KEY",
}
OPS_PATHS = {route.path for route in ops_router.routes}  # type: ignore[attr-defined]


def known_settings() -> set[str]:
    names: set[str] = set()
    for model in (Settings,):
        prefix = model.model_config.get("env_prefix", "")
        for name, info in model.model_fields.items():
            assert info.alias is None and info.validation_alias is None, name  # else the name differs
            names.add(f"{prefix}{name}".upper())
    return names


# ---------------------------------------------------------------- the CLI


def parse_cli(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse a `postengine …` command line with the real CLI's parser (types, limits, unknown
    options), without running it: (the command's path, its parameters)."""
    assert argv and argv[0] == "postengine", argv
    # Typer ships its own copy of click: duck-typed, groups are the commands with subcommands.
    command: Any = typer.main.get_command(cli_app)
    args, path = list(argv[1:]), []
    while hasattr(command, "list_commands"):
        assert args, f"{shlex.join(argv)}: a subcommand is missing"
        name, args = args[0], args[1:]
        sub = command.get_command(command.context_class(command), name)
        assert sub is not None, f"{shlex.join(argv)}: no command {name!r}"
        command, path = sub, [*path, name]
    try:
        ctx = command.make_context(" ".join(["postengine", *path]), args)
    except Exception as exc:  # click's UsageError, BadParameter, NoSuchOption…
        if not hasattr(exc, "format_message"):
            raise
        raise AssertionError(f"{shlex.join(argv)}: {exc.format_message()}") from exc
    return " ".join(path), dict(ctx.params)


def test_parse_cli_rejects_what_the_cli_rejects() -> None:
    assert parse_cli(["postengine", "serve", "--port", "8000", "--workers", "2"]) == (
        "serve",
        {"host": "127.0.0.1", "port": 8000, "demo": False, "workers": 2},
    )
    for wrong in (
        ["postengine", "serve", "--threads", "2"],
        ["postengine", "serve", "--workers", "0"],
        ["postengine", "db", "migrate"],
        ["postengine", "db"],
    ):
        with pytest.raises(AssertionError):
            parse_cli(wrong)


# ---------------------------------------------------------------- compose


def postengine_services() -> dict[str, dict[str, Any]]:
    """The services that run this image."""
    image = SERVICES["migrate"]["image"]
    return {name: svc for name, svc in SERVICES.items() if svc.get("image") == image}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", DOCKERFILE.cmd)
    return shlex.split(command) if isinstance(command, str) else list(command)


def services_running(subcommand: str) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in postengine_services().items()
        if parse_cli(command_of(svc))[0] == subcommand
    }


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation: `values` stand for deploy/.env; unset → the default or ''."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = values.get(name)
        if op in {":-", "-"}:
            return value if value else arg
        if op in {":?", "?"}:
            assert value, f"compose would refuse to start without {name}: {arg}"
            return value
        return value or ""

    return INTERPOLATION.sub(one, text).replace("$$", "$")


@cache
def filled_env_file() -> dict[str, str]:
    """deploy/env.example with every empty value filled in, as the operator is told to (once per
    run: every service sees the same deploy/.env)."""
    values = {}
    for line in ENV_EXAMPLE.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip() or os.urandom(32).hex()
    return values


def resolved_service_env(name: str) -> dict[str, str]:
    values = filled_env_file()
    return {key: interpolate(value, values) for key, value in environment_of(SERVICES[name]).items()}


def test_compose_services_are_the_expected_roles() -> None:
    assert set(services_running("serve")) == {"api-1", "api-2"}
    assert set(services_running("worker")) == {"worker"}
    assert set(services_running("db upgrade")) == {"migrate"}


def test_every_postengine_command_in_compose_is_a_real_command() -> None:
    for name, service in postengine_services().items():
        assert "entrypoint" not in service, name
        parse_cli(command_of(service))  # raises naming the command and the problem


def test_depends_on_names_services_and_conditions_can_be_met() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        for dep, spec in depends.items():
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            assert dep != name
            condition = spec.get("condition", "service_started")
            target = SERVICES[dep]
            if condition == "service_healthy":
                # A health check of its own, or the image's (postengine's HEALTHCHECK is for `serve`).
                check = target.get("healthcheck", {})
                assert not check.get("disable"), f"{name} waits for {dep} to be healthy: it has no check"
                assert "test" in check or dep in services_running("serve"), (name, dep)
            elif condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dep} is one-shot: it must not restart"
            else:
                assert condition == "service_started", (name, dep, condition)
    # The API and the workers start only after the migration succeeded.
    for name in [*services_running("serve"), *services_running("worker")]:
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_pe_variable_is_a_real_setting() -> None:
    known = known_settings()
    sources = {
        "deploy/compose.yaml": {key for svc in SERVICES.values() for key in environment_of(svc)}
        | {m.group(1) for m in INTERPOLATION.finditer(COMPOSE_TEXT)},
        "deploy/env.example": set(re.findall(r"^#?\s*(PE_[A-Z0-9_]+)=", ENV_EXAMPLE, re.MULTILINE)),
        "Dockerfile": set(DOCKERFILE.final.env),
        "docs/deploy.md": set(re.findall(r"\b(PE_[A-Z0-9_]+)\b", DEPLOY_DOC)),
    }
    for source, names in sources.items():
        unknown = {name for name in names if name.startswith("PE_")} - known
        assert not unknown, f"{source} names settings that do not exist: {sorted(unknown)}"


def test_every_compose_setting_is_documented() -> None:
    names = {key for svc in postengine_services().values() for key in environment_of(svc)}
    undocumented = {name for name in names if f"`{name}`" not in DEPLOY_DOC}
    assert not undocumented, f"docs/deploy.md, Configuration: {sorted(undocumented)}"


def test_env_example_and_compose_interpolation_agree() -> None:
    # `--env-file` only feeds compose's interpolation: a variable that compose.yaml never expands
    # would silently never reach a container, and one it requires must be in the example.
    used = {m.group(1) for m in INTERPOLATION.finditer(COMPOSE_TEXT)}
    required = {m.group(1) for m in INTERPOLATION.finditer(COMPOSE_TEXT) if m.group(2) in {":?", "?", None}}
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.MULTILINE))
    assert listed <= used, f"in env.example but never used by compose.yaml: {sorted(listed - used)}"
    assert required <= set(filled_env_file()), f"required, not in env.example: {sorted(required - listed)}"


@pytest.mark.parametrize("service", ["api-1", "api-2", "worker", "migrate"])
def test_scale_out_settings_are_set_and_valid(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = resolved_service_env(service)
    missing = SCALE_OUT_SETTINGS - {key for key, value in env.items() if value}
    assert not missing, f"{service} lacks {sorted(missing)}"
    for key in [key for key in os.environ if key.startswith("PE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not settings.is_sqlite and settings.secret_key is not None
    storage_from_settings(settings)  # s3:// with its endpoint, credentials and public URL: accepted
    # The optional token left out of deploy/.env: compose passes `PE_METRICS_TOKEN=`, meaning none.
    monkeypatch.setenv(
        "PE_METRICS_TOKEN", interpolate(environment_of(SERVICES[service])["PE_METRICS_TOKEN"], {})
    )
    assert Settings(_env_file=None).metrics_token is None  # type: ignore[call-arg]

    postgres = SERVICES["postgres"]["environment"]
    database = urlsplit(settings.database_url)
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert (database.username, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_DB"],
    )
    assert database.password == filled_env_file()["POSTGRES_PASSWORD"]
    assert settings.redis_url is not None and urlsplit(settings.redis_url).hostname == "redis"
    assert settings.s3_endpoint_url is not None
    endpoint = urlsplit(settings.s3_endpoint_url)
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    assert settings.s3_path_style  # MinIO, and the CDN stand-in's `/{bucket}/media/…` rewrite
    # The application's own MinIO user, as minio-init creates it.
    init_env = resolved_service_env("minio-init")
    assert settings.s3_access_key_id == init_env["APP_KEY"]
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == init_env["APP_SECRET"]


def test_connection_budget_fits_postgres_max_connections() -> None:
    env = resolved_service_env("api-1")
    per_pool = int(env["PE_DATABASE_POOL_SIZE"]) + int(env["PE_DATABASE_MAX_OVERFLOW"])
    processes = sum(parse_cli(command_of(svc))[1]["workers"] for svc in services_running("serve").values())
    processes += sum(svc.get("deploy", {}).get("replicas", 1) for svc in services_running("worker").values())
    processes += 1  # migrate, or a `docker compose run … postengine …`
    command = " ".join(SERVICES["postgres"]["command"])
    match = re.search(r"max_connections=(\d+)", command)
    max_connections = int(match.group(1)) if match else 100
    assert processes * per_pool < max_connections


def test_only_the_api_keeps_the_image_health_check() -> None:
    assert DOCKERFILE.final.healthcheck_url is not None
    for name, service in postengine_services().items():
        check = service.get("healthcheck", {})
        if name in services_running("serve"):
            assert not check.get("disable"), f"{name}: the API keeps its liveness check"
            for url in re.findall(r"https?://[^\s'\"]+", json.dumps(check)):
                assert urlsplit(url).path in OPS_PATHS, (name, url)
        else:
            assert check.get("disable") is True, f"{name} has no HTTP listener: the image's check would fail"


def minio_init_script() -> str:
    service = SERVICES["minio-init"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    return interpolate(service["command"][0], filled_env_file())


@dataclass
class MinioCalls:
    calls: list[list[str]] = field(default_factory=list)
    files: dict[str, Any] = field(default_factory=dict)


def run_minio_init(tmp_path: Path) -> MinioCalls:
    """minio-init's shell script with a stand-in `mc` that records its arguments (and the JSON
    policy files it is given): the script's syntax, order and policies, without MinIO."""
    log, files = tmp_path / "mc.log", tmp_path / "files"
    files.mkdir()
    stub = tmp_path / "bin" / "mc"
    stub.parent.mkdir()
    stub.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\0" "$@" >> {log}; printf "\\n" >> {log}\n'
        f'for a in "$@"; do case "$a" in /*.json) cp "$a" {files}/;; esac; done\n'
    )
    stub.chmod(0o755)
    env = {
        **resolved_service_env("minio-init"),
        "PATH": f"{stub.parent}:/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
    }
    script = minio_init_script().replace("/tmp/", f"{tmp_path}/")
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=30)
    calls = [line.split("\0")[:-1] for line in log.read_text().splitlines()]
    return MinioCalls(calls, {p.name: json.loads(p.read_text()) for p in files.iterdir()})


def storage_bucket() -> str:
    return urlsplit(resolved_service_env("api-1")["PE_STORAGE_URL"]).netloc


def test_minio_init_creates_the_bucket_a_private_listing_and_a_bucket_scoped_user(tmp_path: Path) -> None:
    bucket = storage_bucket()
    run = run_minio_init(tmp_path)
    commands = [" ".join(call) for call in run.calls]
    assert f"mb --ignore-existing local/{bucket}" in commands
    # Anonymous access: GET of media/ objects, nothing else (a listing would name every
    # organisation's media, drafts included; uploads/ is the private staging area).
    anonymous = [call for call in run.calls if call[0] == "anonymous"]
    assert len(anonymous) == 1 and anonymous[0][1] == "set-json" and anonymous[0][3] == f"local/{bucket}"
    public = run.files[Path(anonymous[0][2]).name]
    assert [(s["Effect"], s["Principal"], s["Action"], s["Resource"]) for s in public["Statement"]] == [
        ("Allow", {"AWS": ["*"]}, ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/{PUBLIC_PREFIX}*"])
    ]
    # The application's user: this bucket only (docs/deploy.md, Secrets), not MinIO's `readwrite`.
    create = next(call for call in run.calls if call[:3] == ["admin", "policy", "create"])
    policy_name, policy = create[4], run.files[Path(create[5]).name]
    for statement in policy["Statement"]:
        assert all(r.startswith(f"arn:aws:s3:::{bucket}") for r in statement["Resource"]), statement
    app_key = resolved_service_env("minio-init")["APP_KEY"]
    assert ["admin", "policy", "attach", "local", policy_name, "--user", app_key] in run.calls
    assert commands.index(f"mb --ignore-existing local/{bucket}") < commands.index(" ".join(anonymous[0]))


# ---------------------------------------------------------------- Caddyfile


def caddy_site(address: str) -> str:
    """The body of one top-level site block of the Caddyfile."""
    start = CADDYFILE.index(f"\n{address} {{")
    depth, i = 0, CADDYFILE.index("{", start)
    for j in range(i, len(CADDYFILE)):
        depth += {"{": 1, "}": -1}.get(CADDYFILE[j], 0)
        if depth == 0:
            return CADDYFILE[i + 1 : j]
    raise AssertionError(f"unterminated site {address}")


def published_ports(service: str) -> set[int]:
    return {int(str(port).split(":")[-1].split("/")[0]) for port in SERVICES[service].get("ports", [])}


def test_caddy_upstreams_are_the_api_services() -> None:
    api = caddy_site(":8080")
    match = re.search(r"^\s*to\s+(.+)$", api, re.MULTILINE)
    assert match, "reverse_proxy { to … }"
    upstreams = {tuple(target.rsplit(":", 1)) for target in match.group(1).split()}
    expected = {
        (name, str(parse_cli(command_of(svc))[1]["port"])) for name, svc in services_running("serve").items()
    }
    assert upstreams == expected
    health = re.search(r"health_uri\s+(\S+)", api)
    assert health and health.group(1) in OPS_PATHS
    assert 8080 in published_ports("lb") and 8081 in published_ports("lb")


def test_caddy_keeps_metrics_off_the_public_listener() -> None:
    api = caddy_site(":8080")
    matcher = re.search(r"@ops\s+path\s+(.+)$", api, re.MULTILINE)
    assert matcher and {"/metrics", "/readyz", "/healthz"} <= set(matcher.group(1).split())
    assert set(matcher.group(1).split()) >= OPS_PATHS  # every operations route, should more appear
    assert re.search(r"^\s*respond\s+@ops\s+404\s*$", api, re.MULTILINE)
    # `respond` runs before `reverse_proxy` in Caddy's directive order; a `route` or `handle`
    # block would change that order, so there must be none here.
    assert not re.search(r"^\s*(route|handle)\b", api, re.MULTILINE)
    assert "/metrics" in DEPLOY_DOC and "do not expose it publicly" in DEPLOY_DOC


def test_caddy_media_front_serves_the_bucket_media_prefix() -> None:
    media = caddy_site(":8081")
    assert re.search(rf"path\s+/{PUBLIC_PREFIX}\*", media)
    assert f"rewrite * /{storage_bucket()}{{uri}}" in media
    upstream = re.search(r"reverse_proxy\s+(\S+):(\d+)", media)
    assert upstream and upstream.group(1) == "minio" and upstream.group(2) == "9000"
    public = urlsplit(resolved_service_env("api-1")["PE_PUBLIC_MEDIA_URL"])
    assert public.port == 8081 and public.path in {"", "/"}  # URLs are {PE_PUBLIC_MEDIA_URL}/media/…


# ---------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    @property
    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                values[key] = value
        return values

    @property
    def healthcheck_url(self) -> str | None:
        checks = self.all("HEALTHCHECK")
        if not checks:
            return None
        match = re.search(r"https?://[^'\"\s]+", checks[-1])
        return match.group(0) if match else None


@dataclass
class Dockerfile:
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def cmd(self) -> list[str]:
        return json.loads(self.final.all("CMD")[-1])


def parse_dockerfile(text: str) -> Dockerfile:
    stages: list[Stage] = []
    logical: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") and not (logical and logical[-1].endswith("\\")):
            continue
        if logical and logical[-1].endswith("\\"):
            logical[-1] = logical[-1][:-1] + " " + line
        elif line:
            logical.append(line)
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append((keyword, args))
    return Dockerfile(stages)


DOCKERFILE = parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_dockerfile_command_and_health_check() -> None:
    final = DOCKERFILE.final
    assert not final.all("ENTRYPOINT")
    command, params = parse_cli(DOCKERFILE.cmd)
    assert command == "serve"
    exposed = {int(port.split("/")[0]) for args in final.all("EXPOSE") for port in args.split()}
    assert params["port"] in exposed and params["host"] == "0.0.0.0"
    url = urlsplit(final.healthcheck_url or "")
    assert url.path == "/healthz" and url.path in OPS_PATHS  # liveness, not /readyz (docs/deploy.md)
    assert url.hostname == "127.0.0.1" and url.port == params["port"]
    assert "CMD" in final.all("HEALTHCHECK")[-1] and "python" in final.all("HEALTHCHECK")[-1]


def test_dockerfile_runs_as_a_created_non_root_user() -> None:
    final = DOCKERFILE.final
    users = final.all("USER")
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    created = " ".join(final.all("RUN"))
    assert re.search(rf"useradd\b.*\b{re.escape(user)}\b", created)
    # Its home is the data directory, and the working directory that the relative default
    # database and media paths (./data/…) resolve against.
    home = re.search(r"--home-dir\s+(\S+)", created)
    assert home and final.env["PE_DATA_DIR"] == home.group(1) == final.all("WORKDIR")[-1]
    index = [kw for kw, _ in final.instructions]
    assert index.index("USER") > max(i for i, kw in enumerate(index) if kw == "RUN")


def test_dockerfile_stages_share_the_interpreter_that_the_copied_venv_needs() -> None:
    build, final = DOCKERFILE.stages[0], DOCKERFILE.final
    assert len(DOCKERFILE.stages) == 2 and build.name
    # The venv's python is a symlink to the base image's interpreter: same image in both stages.
    assert build.base == final.base
    version = re.search(r"python:(\d+\.\d+)", final.base)
    requires = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert (
        version
        and requires
        and tuple(map(int, version.group(1).split("."))) >= tuple(map(int, requires.group(1).split(".")))
    )
    copied = [args for args in final.all("COPY") if args.startswith(f"--from={build.name}")]
    venv = re.search(r"python -m venv (\S+)", " ".join(build.all("RUN")))
    assert venv and copied == [f"--from={build.name} {venv.group(1)} {venv.group(1)}"]
    assert final.env["PATH"].startswith(f"{venv.group(1)}/bin:")


def dockerignore_excludes(path: str) -> bool:
    """`.dockerignore` semantics: Go's filepath.Match per pattern (`*` stays within a segment,
    `**` spans any), a path is excluded with its parent, `!` re-includes."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def build_copy_sources() -> list[str]:
    sources = []
    for args in DOCKERFILE.stages[0].all("COPY"):
        assert not args.startswith("--from")
        sources += args.split()[:-1]
    return sources


def tracked_files(*paths: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout.split()


def test_dockerfile_copies_what_exists_and_dockerignore_keeps_it() -> None:
    sources = build_copy_sources()
    assert set(sources) == {"pyproject.toml", "README.md", "src"}
    for source in sources:
        assert (ROOT / source).exists(), source
    for path in tracked_files(*sources):
        assert not dockerignore_excludes(path), f".dockerignore drops {path}, which the build needs"
    # Build leftovers must not reach the build: a stale egg-info, caches, secrets.
    for path in (
        "src/postengine.egg-info/SOURCES.txt",
        "src/postengine/__pycache__/app.cpython-311.pyc",
        ".env",
        "build/lib/x.py",
        ".venv/bin/python",
    ):
        assert dockerignore_excludes(path), path


def test_package_data_covers_every_data_file_of_the_package() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"\[tool\.setuptools\.package-data\]\s*postengine\s*=\s*\[(.*?)\]", text, re.DOTALL)
    assert block
    patterns = re.findall(r'"([^"]+)"', block.group(1))
    package = ROOT / "src" / "postengine"
    covered = {path for pattern in patterns for path in package.glob(pattern)}
    data = [
        package / rel.removeprefix("src/postengine/")
        for rel in tracked_files("src/postengine")
        if not rel.endswith(".py")
    ]
    assert data and not [str(path) for path in data if path not in covered]
    assert any(p.suffix == ".ttf" for p in data) and any(p.name == "script.py.mako" for p in data)


# ---------------------------------------------------------------- docs/deploy.md


def doc_commands() -> list[list[str]]:
    """Every `postengine …` command line of docs/deploy.md: code spans and shell blocks."""
    lines = re.findall(r"`(postengine [^`]+)`", DEPLOY_DOC)
    for block in re.findall(r"```sh\n(.*?)```", DEPLOY_DOC, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "postengine" in words:
                lines.append(shlex.join(words[words.index("postengine") :]))
    commands = []
    for line in lines:
        if "…" in line:
            continue
        commands.append(["2" if word == "N" else word for word in shlex.split(line)])
    return commands


def test_every_postengine_command_in_the_deploy_doc_is_real() -> None:
    commands = doc_commands()
    assert {parse_cli(c)[0] for c in commands} >= {"serve", "worker", "db upgrade", "orgs create"}
    for command in commands:
        parse_cli(command)


def test_deploy_doc_names_the_compose_services() -> None:
    for name in SERVICES:
        assert f"`{name}`" in DEPLOY_DOC, f"docs/deploy.md, The compose file: {name}"


# ---------------------------------------------------------------- the installed package


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def installed_copy(tmp_path: Path) -> Iterator[Path]:
    """The build stage of the Dockerfile without Docker: its COPY sources in a fresh context, a
    wheel built from them (as `pip install .` does), installed non-editable into a folder of its own.
    Offline: the venv's setuptools builds it (no build isolation, no index)."""
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed in this venv: the wheel build would need the network")
    context = tmp_path / "context"
    context.mkdir()
    for source in build_copy_sources():
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        else:
            shutil.copy2(src, context / source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            *pip,
            "wheel",
            str(context),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(wheels),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("postengine-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel), "-q"],
        check=True,
        timeout=120,
    )
    yield wheel


def image_env(workdir: Path, site: Path) -> dict[str, str]:
    """The image's environment (Dockerfile ENV), this test's installed copy first on the path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PE_", "PROMETHEUS_"))}
    for key, value in DOCKERFILE.final.env.items():
        if key.startswith("PE_"):
            env[key] = str(workdir) if key == "PE_DATA_DIR" else value
    env["PYTHONPATH"] = str(site)
    env["PATH"] = f"{site / 'bin'}:{env.get('PATH', '')}"
    return env


def test_installed_wheel_migrates_and_serves_healthz(installed_copy: Path, tmp_path: Path) -> None:
    """SLOW (~5-15 s): the image's build and commands, emulated. Builds the wheel, checks it carries
    the migrations and fonts, then runs `postengine db upgrade` and `postengine serve` from the
    installed copy (not the editable checkout) against SQLite, in a working directory like the
    image's, and asks /healthz and /readyz."""
    names = set(zipfile.ZipFile(installed_copy).namelist())
    versions = sorted(p.name for p in (ROOT / "src/postengine/migrations/versions").glob("*.py"))
    for name in versions:
        assert f"postengine/migrations/versions/{name}" in names
    for name in ("env.py", "script.py.mako"):
        assert f"postengine/migrations/{name}" in names
    for font in (ROOT / "src/postengine/kit/fonts").iterdir():
        assert f"postengine/kit/fonts/{font.name}" in names
    assert "postengine/py.typed" in names
    (entry_points_file,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    entry_points = zipfile.ZipFile(installed_copy).read(entry_points_file).decode()
    assert "postengine = postengine.cli:main" in entry_points

    site, workdir = tmp_path / "site", tmp_path / "var-lib-postengine"
    workdir.mkdir()
    env = image_env(workdir, site)
    where = subprocess.run(
        [sys.executable, "-c", "import postengine; print(postengine.__file__)"],
        env=env, cwd=workdir, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(site)), "the test must run the installed copy"
    postengine = str(site / "bin" / "postengine")
    upgrade = subprocess.run(
        [postengine, "db", "upgrade", "--json"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr[-3000:]
    assert json.loads(upgrade.stdout)["applied"][-1] == max(
        v.split("_")[0] for v in versions if v[0].isdigit()
    )

    port = free_port()
    command = [postengine if word == "postengine" else word for word in DOCKERFILE.cmd]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 45
        health = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, f"serve did not answer: {log.read_text()[-3000:]}"
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) >= {"database", "storage"}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert (workdir / "data" / "postengine.db").exists()  # the image's relative default, under WORKDIR
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines and all("level" in json.loads(line) for line in lines)  # PE_LOG_JSON=true
