"""The command line an operator expects (issue 16): `--version`, `pgdoctor` alone, an environment variable
for every option, the config file (targets, precedence, errors with file and line, passwords), and shell
completion run for real in bash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer._click.core import ParameterSource

from pgdoctor import __version__, cli
from tests.conftest import FIXTURES, ROOT, invoke, run_cli
from tests.pgcluster import Cluster
from tests.test_cli_wiring import write_pgbouncer_snapshot

INCIDENT = str(FIXTURES / "incident-pg18.json")
SECRET = "hunter2-Zq9"


@pytest.fixture(autouse=True)
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in an empty working directory with its own XDG_CONFIG_HOME and no PGDOCTOR_* variable:
    no config file or variable of the machine leaks in."""
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("PGDOCTOR_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return here


def commands() -> dict[str, Any]:
    group: Any = typer.main.get_command(cli.app)
    return dict(group.commands)


def parsed(command: str, *args: str) -> Any:
    """The command's context after parsing these arguments (the environment and config file apply)."""
    return commands()[command].make_context(command, list(args))


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def one_line_error(result: Any, *needles: str) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return str(lines[0])


# --- --version and `pgdoctor` alone -------------------------------------------------------------------


def test_version_is_the_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"pgdoctor {__version__}\n" == f"pgdoctor {project['version']}\n"
    assert "--version" in invoke("--help").stdout


def test_pgdoctor_alone_names_the_command_to_run_first() -> None:
    result = run_cli()
    assert result.returncode == 2, result  # documented: no command is a usage error
    assert result.stdout.splitlines()[2].startswith("Start with:  pgdoctor triage -d "), result.stdout
    assert len(result.stdout.splitlines()) <= 8  # short, not the full --help
    assert "Usage:" not in result.stdout and result.stderr == ""


# --- environment variables ----------------------------------------------------------------------------


def every_option() -> list[tuple[str, Any]]:
    return [(name, p) for name, c in commands().items() for p in c.params if p.param_type_name == "option"]


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_option_has_its_environment_variable_shown_in_help(command: str) -> None:
    sub = commands()[command]
    ctx = sub.make_context(command, ["--help"], resilient_parsing=True)
    options = [p for p in sub.params if p.param_type_name == "option"]
    assert {"config", "target"} <= {p.name for p in options}
    for param in options:
        (long,) = [o for o in param.opts if o.startswith("--")]
        expected = "PGDOCTOR_" + long[2:].upper().replace("-", "_")
        assert param.envvar == expected, (command, long)
        help_record = param.get_help_record(ctx)
        assert help_record is not None and f"env var: {expected}" in help_record[1], (command, long)


def sample(param: Any) -> tuple[str, Any]:
    """A value for the option's variable other than its default, and what the option then holds."""
    kind = type(param.type).__name__
    if param.multiple:
        return "web=16x8 worker=4", ("web=16x8", "worker=4")
    if getattr(param, "is_flag", False):
        return "1", True
    if "Choice" in kind:
        choices = [str(c) for c in param.type.choices]
        default = str(getattr(param.default, "value", param.default))
        choice = next(c for c in reversed(choices) if c != default)
        return choice, choice
    if "Float" in kind:
        return "7.5", 7.5
    if "Int" in kind:
        return "7", 7
    if "Path" in kind:
        return "some/file.json", "some/file.json"
    return "some-value", "some-value"


@pytest.mark.parametrize(
    ("command", "param"),
    [(c, p) for c, p in every_option() if p.expose_value],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_every_environment_variable_sets_its_option(
    command: str, param: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, expected = sample(param)
    monkeypatch.setenv(param.envvar, text)
    required = ["-o", "-"] if command in ("snapshot", "record") and param.name != "output" else []
    required += ["recording.jsonl"] if command == "timeline" else []
    ctx = parsed(command, *required)
    value = ctx.params[param.name]
    value = str(value) if isinstance(value, Path) else getattr(value, "value", value)
    assert (tuple(value) if param.multiple else value) == expected, (param.envvar, value)
    assert ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT


def test_config_and_target_have_their_variables(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(work / "elsewhere.toml", "[targets.prod]\nidle_xact_warn = 42\n")
    monkeypatch.setenv("PGDOCTOR_CONFIG", str(config))
    monkeypatch.setenv("PGDOCTOR_TARGET", "prod")
    assert parsed("connections").params["idle_xact_warn"] == 42


def test_a_bad_environment_value_is_one_line_naming_the_variable() -> None:
    result = invoke("connections", "-s", INCIDENT, env={"PGDOCTOR_TIMEOUT": "abc"})
    one_line_error(result, "PGDOCTOR_TIMEOUT 'abc': not a number")
    result = invoke("connections", "-s", INCIDENT, env={"PGDOCTOR_FORMAT": "xml"})
    assert result.exit_code == 2 and "xml" in result.stderr


# --- the config file ----------------------------------------------------------------------------------


def output_format(result: Any) -> str:
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    if out.startswith("{"):
        json.loads(out)
        return "json"
    if "\n|---" in out or "\n| ---" in out or "\n|:--" in out:
        return "markdown"
    if out.startswith("pgdoctor connections:"):
        return "plain"
    return "csv" if "," in out.splitlines()[0] else "?"


def test_precedence_flag_environment_file_default(work: Path) -> None:
    run = ("connections", "-s", INCIDENT)
    assert output_format(invoke(*run)) == "plain"  # default: auto, plain in a pipe
    write(work / "pgdoctor.toml", '[defaults]\nformat = "json"\n')
    assert output_format(invoke(*run)) == "json"  # the file over the default
    env: dict[str, str | None] = {"PGDOCTOR_FORMAT": "csv"}
    assert output_format(invoke(*run, env=env)) == "csv"  # the environment over the file
    assert output_format(invoke(*run, "-f", "markdown", env=env)) == "markdown"  # the flag over all


def test_precedence_for_a_threshold_and_target_over_defaults(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(work / "pgdoctor.toml", "[defaults]\nidle_xact_warn = 30\n[targets.prod]\nidle_xact_warn = 20\n")
    assert parsed("connections").params["idle_xact_warn"] == 30
    ctx = parsed("connections", "--target", "prod")
    assert ctx.params["idle_xact_warn"] == 20
    assert ctx.get_parameter_source("idle_xact_warn") is ParameterSource.DEFAULT_MAP
    monkeypatch.setenv("PGDOCTOR_IDLE_XACT_WARN", "15")
    assert parsed("connections", "--target", "prod").params["idle_xact_warn"] == 15
    assert parsed("connections", "--target", "prod", "--idle-xact-warn", "10").params["idle_xact_warn"] == 10
    monkeypatch.delenv("PGDOCTOR_IDLE_XACT_WARN")
    assert parsed("connections", "--idle-xact-crit", "99").params["idle_xact_crit"] == 99  # the rest: default
    crit = next(p for p in commands()["connections"].params if p.name == "idle_xact_crit")
    assert parsed("connections").params["idle_xact_crit"] == crit.default


def test_file_places_and_their_order(work: Path, tmp_path: Path) -> None:
    user = write(tmp_path / "xdg" / "pgdoctor" / "config.toml", "[defaults]\ntimeout = 4\n")
    assert parsed("locks").params["timeout"] == 4  # $XDG_CONFIG_HOME/pgdoctor/config.toml
    write(work / "pgdoctor.toml", "[defaults]\ntimeout = 3\n")
    assert parsed("locks").params["timeout"] == 3  # ./pgdoctor.toml first
    other = write(tmp_path / "other.toml", "[defaults]\ntimeout = 2\n")
    assert parsed("locks", "--config", str(other)).params["timeout"] == 2  # --config over both
    assert user.exists()


def test_keys_of_other_commands_serve_them_and_are_ignored_by_the_rest(work: Path) -> None:
    write(
        work / "pgdoctor.toml",
        '[targets.prod]\ndsn = "service=prod"\nwait_warn = 5\nidle_xact_warn = 30\napp = "web=2"\n'
        "sessions = true\n",
    )
    locks = parsed("locks", "--target", "prod").params
    assert (locks["wait_warn"], locks["dsn"]) == (5, "service=prod")
    connections = parsed("connections", "--target", "prod").params
    assert (connections["idle_xact_warn"], connections["sessions"]) == (30, True)
    assert parsed("recommend", "--target", "prod").params["app"] == ("web=2",)
    result = invoke("connections", "--target", "prod", "-s", INCIDENT, "-f", "json")
    assert result.exit_code == 0, result.stderr  # --snapshot over the target's dsn; wait_warn ignored


def test_dsn_keys_name_the_same_servers_for_every_command(work: Path) -> None:
    """`dsn` is PostgreSQL and `pgbouncer_dsn` PgBouncer's console, also for `pgdoctor pgbouncer`, whose own
    --dsn is the console and --postgres-dsn PostgreSQL; a snapshot given on the command line wins."""
    write(work / "pgdoctor.toml", '[targets.prod]\ndsn = "host=db1"\npgbouncer_dsn = "host=pgb1 port=6432"\n')
    connections = parsed("connections", "--target", "prod").params
    assert (connections["dsn"], connections["pgbouncer_dsn"]) == ("host=db1", "host=pgb1 port=6432")
    pooler = parsed("pgbouncer", "--target", "prod").params
    assert (pooler["dsn"], pooler["postgres_dsn"]) == ("host=pgb1 port=6432", "host=db1")
    snapshot = write_pgbouncer_snapshot(work / "with-pgbouncer.json")
    for command in ("pgbouncer", "connections"):
        result = invoke(command, "--target", "prod", "-s", str(snapshot), "-f", "json")
        assert result.exit_code == 0, (command, result.stderr)
    write(work / "pgdoctor.toml", '[defaults]\npostgres_dsn = "host=db1"\n')
    one_line_error(invoke("locks"), ":2: [defaults] postgres_dsn: no pgdoctor command", "did you mean")


def test_service_becomes_a_conninfo(work: Path) -> None:
    write(work / "pgdoctor.toml", "[targets.a]\nservice = 'prod'\n[targets.b]\nservice = \"my svc\"\n")
    assert parsed("locks", "--target", "a").params["dsn"] == "service=prod"
    assert parsed("locks", "--target", "b").params["dsn"] == "service='my svc'"


BAD_FILES = [
    # (file, arguments, what the one line says)
    ('[defaults]\nformat = "json"\nidle_xact_wran = 30\n', [], ":3: [defaults] idle_xact_wran: no pgdoctor"),
    ("[targets.prod]\ndsn = 'x=1'\n\ntimeout = 'soon'\n", ["--target", "prod"], ":4: [targets.prod] timeout"),
    ('[targets.prod]\nformat = "xml"\n', ["--target", "prod"], ":2: [targets.prod] format: "),
    ("[defaults]\ntimeout = [1, 2]\n", [], ":2: [defaults] timeout: a list"),
    ("[defaults]\ntimeout = -3\n", [], ":2: [defaults] timeout: must not be negative"),
    ("[defaults]\nformat = \n", [], "pgdoctor.toml:2: not valid TOML"),
    ('format = "json"\n', [], "pgdoctor.toml:1: format: not a section"),
    ("[target.prod]\ndsn = 'x'\n", [], "pgdoctor.toml:1: target: not a section"),
    ("[targets]\nprod = 'x'\n", [], ":2: [targets] prod: a target is a table"),
    ("[targets.prod]\ndsn = 'a'\nservice = 'b'\n", ["--target", "prod"], ":3: [targets.prod] service: give"),
    ("[targets.prod]\n\n[targets.prod.more]\nx = 1\n", [], ":3: [targets.prod] more: a table"),
    ("[targets.prod]\ntimeout = 3\n", ["--target", "nope"], "--target nope: no [targets.nope]"),
]


@pytest.mark.parametrize(("text", "args", "needle"), BAD_FILES)
def test_a_bad_config_file_is_one_line_with_file_line_and_key(
    work: Path, text: str, args: list[str], needle: str
) -> None:
    write(work / "pgdoctor.toml", text)
    line = one_line_error(invoke("connections", "-s", INCIDENT, *args), needle)
    assert "pgdoctor.toml" in line


def test_a_missing_config_file_or_target_without_file() -> None:
    one_line_error(invoke("locks", "--config", "/nonexistent/pg.toml"), "/nonexistent/pg.toml: not found")
    one_line_error(invoke("locks", "--target", "prod", "-s", INCIDENT), "--target prod: no config file")


def test_no_password_is_printed_and_a_readable_file_is_warned_about(work: Path) -> None:
    text = f'[targets.prod]\ndsn = "postgresql://app:{SECRET}@127.0.0.1:1/app"\ntimeout = "{SECRET}"\n'
    config = write(work / "pgdoctor.toml", text, 0o600)
    result = invoke("locks", "--target", "prod")
    line = one_line_error(result, ":3: [targets.prod] timeout", "****")
    assert SECRET not in result.stderr + result.stdout and "warning" not in result.stderr, line
    config.chmod(0o644)
    result = invoke("locks", "--target", "prod")
    assert SECRET not in result.stderr + result.stdout
    warning = result.stderr.splitlines()[0]
    assert warning.startswith("warning: config file pgdoctor.toml holds a password"), result.stderr
    assert "0644" in warning and "0600" in warning
    write(work / "pgdoctor.toml", f'[defaults]\npassword = "{SECRET}"\n', 0o640)  # a password key
    result = invoke("locks", "-s", str(FIXTURES / "locks-pg18.json"), "-f", "json")
    assert result.stderr.startswith("warning: config file"), result.stderr
    assert SECRET not in result.stderr
    write(work / "pgdoctor.toml", '[defaults]\ndsn = "host=db1"\n', 0o644)  # no password: no warning
    assert "warning" not in invoke("locks", "-s", str(FIXTURES / "locks-pg18.json"), "-f", "json").stderr


# --- live: a target's dsn, service and password reach libpq -------------------------------------------


def test_targets_connect(pg: Cluster, work: Path) -> None:
    role = "cfg_pw"
    pg.sql(f"DROP ROLE IF EXISTS {role}")
    pg.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}' IN ROLE pg_monitor")
    services = write(
        work / "pg_service.conf", f"[svc]\nhost={pg.socket_dir}\nport={pg.port}\nuser=postgres\n"
    )
    tcp = f"host=127.0.0.1 port={pg.port} user={role} dbname=postgres"
    write(
        work / "pgdoctor.toml",
        f'[defaults]\nformat = "json"\n[targets.direct]\ndsn = "{pg.dsn()}"\n'
        f'[targets.svc]\nservice = "svc"\n[targets.pw]\ndsn = "{tcp}"\npassword = "{SECRET}"\n'
        f'[targets.wrong]\ndsn = "{tcp}"\npassword = "not-{SECRET}"\n',
    )
    env = {"PGSERVICEFILE": str(services)}
    major = str(pg.version)
    for target in ("direct", "svc", "pw"):
        result = run_cli("connections", "--target", target, env=env)
        assert result.returncode == 0, (target, result.stderr)
        assert json.loads(result.stdout)["server"]["version"].startswith(major), target
    wrong = run_cli("connections", "--target", "wrong", env=env)
    assert wrong.returncode == 3, wrong.stderr
    assert SECRET not in wrong.stderr + wrong.stdout


# --- shell completion, for real -----------------------------------------------------------------------


@pytest.fixture
def on_path(tmp_path: Path) -> dict[str, str]:
    """An environment with a `pgdoctor` on PATH that runs this source tree, as an installed one would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "pgdoctor"
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m pgdoctor "$@"\n')
    launcher.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def complete_in_bash(env: dict[str, str], script: str, words: list[str]) -> list[str]:
    """Source the completion script in a real bash, set COMP_WORDS/COMP_CWORD as bash does for a <TAB>
    after `words` (the last one being completed), run the completion function, return COMPREPLY."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (
        f'source "$1"\nCOMP_WORDS=({quoted})\nCOMP_CWORD={len(words) - 1}\n'
        'fn=$(complete -p pgdoctor | sed -E "s/.*-F ([^ ]+) .*/\\1/")\n'
        '"$fn" pgdoctor\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_commands_options_and_choices(
    on_path: dict[str, str], tmp_path: Path
) -> None:
    source = subprocess.run(
        ["pgdoctor"],
        env={**on_path, "_PGDOCTOR_COMPLETE": "source_bash"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "complete -o default -F" in source.stdout
    script = tmp_path / "pgdoctor.bash"
    script.write_text(source.stdout)
    assert complete_in_bash(on_path, str(script), ["pgdoctor", "conn"]) == ["connections"]
    assert complete_in_bash(on_path, str(script), ["pgdoctor", "sl"]) == ["slow-queries"]
    options = complete_in_bash(on_path, str(script), ["pgdoctor", "connections", "--idle-x"])
    assert sorted(options) == ["--idle-xact-crit", "--idle-xact-warn"]
    assert "--target" in complete_in_bash(on_path, str(script), ["pgdoctor", "locks", "--ta"])
    formats = complete_in_bash(on_path, str(script), ["pgdoctor", "locks", "--format", ""])
    assert formats == ["auto", "table", "plain", "markdown", "csv", "json", "openmetrics"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts(on_path: dict[str, str], shell: str) -> None:
    source = subprocess.run(
        ["pgdoctor"],
        env={**on_path, "_PGDOCTOR_COMPLETE": f"source_{shell}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"_PGDOCTOR_COMPLETE=complete_{shell}" in source.stdout
    answer = subprocess.run(
        ["pgdoctor"],
        env={
            **on_path,
            "_PGDOCTOR_COMPLETE": f"complete_{shell}",
            "_TYPER_COMPLETE_ARGS": "pgdoctor loc",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "locks" in answer.stdout
