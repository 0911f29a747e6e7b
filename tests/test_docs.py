"""README.md against the code, as sqlite-utils tests its docs: the findings tables of `connections`,
`locks`, `slow-queries`, `recommend` and `pgbouncer` show the thresholds the code uses, and every option
of every command's `--help` (each command of pgdoctor.cli.COMMANDS, and the command line's own) is
documented in the README (adding an option or a command without documenting it fails here); the
environment variables the README names exist; the examples at the end of each `--help` parse. The
analysis defaults are the same constants."""

from __future__ import annotations

import inspect
import re
import shlex
from collections.abc import Callable
from typing import Any

import pytest
import typer

from pgdoctor import cli
from pgdoctor.analyze import connections, connections_ps, pgbouncer, thresholds
from pgdoctor.analyze.choices import GroupBy
from pgdoctor.analyze.sizing import memory, pools
from pgdoctor.cli import app
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
COMMANDS = tuple(cli.COMMANDS)  # every command: a new one needs its README section
# documented once for every command ("Connecting", "Configuration", "Output formats", "Exit codes")
COMMON = {
    "--dsn", "-d", "--snapshot", "-s", "--format", "-f", "--timeout", "--fail-on", "--help", "-h", "--config",
    "--target",
}  # fmt: skip

# every threshold option, and the constant it defaults to
OPTION_CONSTANTS: dict[str, dict[str, float]] = {
    "connections": {
        "--capacity-warn-pct": thresholds.CAPACITY_WARN_PCT,
        "--capacity-crit-pct": thresholds.CAPACITY_CRIT_PCT,
        "--idle-xact-warn": thresholds.IDLE_XACT_WARN_S,
        "--idle-xact-crit": thresholds.IDLE_XACT_CRIT_S,
        "--leak-min-idle": thresholds.LEAK_MIN_IDLE,
        "--leak-share-pct": thresholds.LEAK_SHARE_PCT,
        "--leak-idle-age": thresholds.LEAK_IDLE_S,
        "--blocked-crit": thresholds.BLOCKED_CRIT_S,
        "--xmin-warn": thresholds.XMIN_WARN_S,
    },
    "locks": {
        "--wait-warn": thresholds.LOCK_WAIT_WARN_S,
        "--wait-crit": thresholds.LOCK_WAIT_CRIT_S,
        "--queue-warn": thresholds.LOCK_QUEUE_WARN,
        "--queue-crit": thresholds.LOCK_QUEUE_CRIT,
        "--pressure-warn-pct": thresholds.LOCK_PRESSURE_WARN_PCT,
        "--pressure-crit-pct": thresholds.LOCK_PRESSURE_CRIT_PCT,
    },
    "slow-queries": {
        "--running-min": thresholds.RUNNING_MIN_S,
        "--running-warn": thresholds.RUNNING_WARN_S,
        "--share-warn-pct": thresholds.SHARE_WARN_PCT,
        "--share-crit-pct": thresholds.SHARE_CRIT_PCT,
        "--share-min-total-ms": thresholds.SHARE_MIN_TOTAL_MS,
        "--mean-warn-ms": thresholds.MEAN_WARN_MS,
        "--calls-min": thresholds.CALLS_MIN,
        "--hit-ratio-min": thresholds.HIT_RATIO_MIN_PCT,
        "--reset-recent": thresholds.RESET_RECENT_S,
    },
    "recommend": {},
    "snapshot": {},
    "timeline": {},
    "triage": {},  # each analysis with its command's defaults: no threshold options of its own
    "pgbouncer": {
        "--wait-crit-pct": thresholds.PGB_WAIT_CRIT_PCT,
        "--wait-crit": thresholds.PGB_WAIT_CRIT_S,
        "--server-xact-warn": thresholds.PGB_SERVER_XACT_WARN_S,
        "--client-warn-pct": thresholds.PGB_CLIENT_WARN_PCT,
        "--client-crit-pct": thresholds.PGB_CLIENT_CRIT_PCT,
    },
}
# `record` runs the `connections` analysis at every tick, with the same threshold options
OPTION_CONSTANTS["record"] = OPTION_CONSTANTS["connections"]
# thresholds that are not options, as the README's findings tables write them: (pattern, constant)
FIXED: dict[str, list[tuple[str, float]]] = {
    "connections": [
        (r"critical when its xmin is ≥ ([\d,]+) million transactions old", thresholds.XMIN_CRIT_AGE / 1e6),
    ],
    "locks": [],
    "slow-queries": [
        (r"a statement with ≥ ([\d,]+) blocks read", thresholds.HIT_MIN_READS),
        (r"all statements together \(≥ ([\d,]+) blocks read\)", thresholds.SERVER_HIT_MIN_READS),
        (r"entries ≥ ([\d,]+) % of `pg_stat_statements.max`", thresholds.MAX_FULL_PCT),
        (r"`long_running` \|[^\n]*critical ≥ ([\d,]+) s \|", thresholds.RUNNING_CRIT_S),
    ],
    "recommend": [
        (r"`memory_overcommit` \|[^\n]*leaves under ([\d,]+)% of it", memory.HEADROOM_WARN_PCT),
        (r"`direct_connections` \|[^\n]*over ([\d,]+) × the CPU pool", pools.DIRECT_FACTOR),
        (r"`cpus_assumed`, `apps_observed` \| pools sized for ([\d,]+) CPUs", pools.ASSUMED_CPUS),
    ],
    "pgbouncer": [],
    "snapshot": [],
    "record": [],
    "timeline": [],
    "triage": [],
}
# the analysis functions' keyword defaults, and the constant each must be: (function, {keyword: constant})
ANALYSIS_DEFAULTS: list[tuple[Callable[..., Any], dict[str, float]]] = [
    (
        connections.analyze,
        {
            "capacity_warn_pct": thresholds.CAPACITY_WARN_PCT,
            "capacity_crit_pct": thresholds.CAPACITY_CRIT_PCT,
            "idle_xact_warn_s": thresholds.IDLE_XACT_WARN_S,
            "idle_xact_crit_s": thresholds.IDLE_XACT_CRIT_S,
            "leak_min_idle": thresholds.LEAK_MIN_IDLE,
            "leak_share_pct": thresholds.LEAK_SHARE_PCT,
            "leak_idle_s": thresholds.LEAK_IDLE_S,
            "blocked_crit_s": thresholds.BLOCKED_CRIT_S,
            "xmin_warn_s": thresholds.XMIN_WARN_S,
            "xmin_crit_age": thresholds.XMIN_CRIT_AGE,
        },
    ),
    (
        connections_ps.analyze_ps,
        {
            "capacity_warn_pct": thresholds.CAPACITY_WARN_PCT,
            "capacity_crit_pct": thresholds.CAPACITY_CRIT_PCT,
            "leak_min_idle": thresholds.LEAK_MIN_IDLE,
            "leak_share_pct": thresholds.LEAK_SHARE_PCT,
        },
    ),
    (
        pgbouncer.analyze,
        {
            "wait_crit_pct": thresholds.PGB_WAIT_CRIT_PCT,
            "wait_crit_s": thresholds.PGB_WAIT_CRIT_S,
            "server_xact_warn_s": thresholds.PGB_SERVER_XACT_WARN_S,
            "client_warn_pct": thresholds.PGB_CLIENT_WARN_PCT,
            "client_crit_pct": thresholds.PGB_CLIENT_CRIT_PCT,
        },
    ),
]


def heading(title: str) -> str:
    """The README's section under this `## ` heading, to the next one of the same level."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert m, title
    return m.group(1)


def section(command: str) -> str:
    """The README's section of one command."""
    return heading(f"`pgdoctor {command}`")


def params(command: str) -> list[Any]:
    group: Any = typer.main.get_command(app)
    return list(group.commands[command].params)


def names(param: Any) -> list[str]:
    """An option's names: --name, -n, and --no-name for a flag pair."""
    return [*param.opts, *getattr(param, "secondary_opts", [])]


def options(command: str) -> dict[str, Any]:
    """The command's options, by each of their names."""
    return {name: param for param in params(command) for name in names(param)}


def number(text: str) -> float:
    return float(text.replace(",", ""))


def shown_options(text: str) -> dict[str, float]:
    """Numeric option defaults as the README writes them: `--option N` in the findings tables, and
    | `--option` | N … | in the options tables."""
    shown = {m.group(1): number(m.group(2)) for m in re.finditer(r"`(--[a-z][a-z0-9-]*) (\d[\d,.]*)`", text)}
    table = re.finditer(r"^\| `(--[a-z][a-z0-9-]*)(?:/-[a-z])?` \| (\d[\d,.]*)(?![\w.])", text, re.M)
    return shown | {m.group(1): number(m.group(2)) for m in table}


def mentioned(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command", COMMANDS)
def test_threshold_options_default_to_their_constant(command: str) -> None:
    opts = options(command)
    for name, constant in OPTION_CONSTANTS[command].items():
        assert opts[name].default == constant, name


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_thresholds_are_the_codes(command: str) -> None:
    text = section(command)
    opts = options(command)
    shown = shown_options(text)
    for name, value in shown.items():
        assert name in opts, f"README names {name}, which `pgdoctor {command}` does not have"
        assert opts[name].default == value, f"README: {name} {value}; code: {opts[name].default}"
    for name, constant in OPTION_CONSTANTS[command].items():
        assert shown.get(name) == constant, f"README does not show `{name} {constant:g}`"
    for pattern, constant in FIXED[command]:
        m = re.search(pattern, text)
        assert m, f"README's {command} section lost {pattern!r}"
        assert number(m.group(1)) == constant, (pattern, m.group(1), constant)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_documented(command: str) -> None:
    text = section(command)
    missing = [
        names(param)
        for param in params(command)
        if not any(mentioned(n, text) or (n in COMMON and mentioned(n, README)) for n in names(param))
    ]
    assert missing == [], f"`pgdoctor {command}` options missing from its README section: {missing}"


@pytest.mark.parametrize(
    ("function", "expected"), ANALYSIS_DEFAULTS, ids=lambda f: getattr(f, "__module__", "")
)
def test_analysis_defaults_are_the_constants(
    function: Callable[..., Any], expected: dict[str, float]
) -> None:
    """Called without options (tests, benchmarks, other analyses), the analysis judges as the CLI does."""
    signature = inspect.signature(function)
    for keyword, constant in expected.items():
        assert signature.parameters[keyword].default == constant, (function.__qualname__, keyword)


def test_group_by_is_one_enum() -> None:
    """`connections --by` offers exactly what the analysis groups by."""
    assert tuple(GroupBy) == connections.GROUP_BY
    assert tuple(options("connections")["--by"].type.choices) == tuple(g.value for g in GroupBy)


def test_the_checks_can_fail() -> None:
    """A changed README number or an undocumented option is caught."""
    text = section("locks").replace("`--wait-warn 10`", "`--wait-warn 15`")
    shown = shown_options(text)
    assert shown["--wait-warn"] != options("locks")["--wait-warn"].default
    assert not mentioned("--wait-warn", section("locks").replace("--wait-warn", "--wait-wrn"))
    assert mentioned("--wait-warn", section("locks"))
    assert not mentioned("--all", "`--all-sessions`")


def test_the_command_lines_own_options_are_documented() -> None:
    """`pgdoctor --version`, the completion options: in the README's Configuration section."""
    group: Any = typer.main.get_command(app)
    text = heading("Configuration")
    missing = [names(p) for p in group.params if not any(mentioned(n, text) for n in names(p))]
    assert missing == [], missing


def test_the_environment_variables_the_readme_names_exist() -> None:
    """Every PGDOCTOR_… the README names is an option's variable (the rule is documented, not a list)."""
    group: Any = typer.main.get_command(app)
    real = {p.envvar for c in group.commands.values() for p in c.params}
    named = set(re.findall(r"\bPGDOCTOR_[A-Z_]*[A-Z]\b", README))
    assert {"PGDOCTOR_FORMAT", "PGDOCTOR_TIMEOUT", "PGDOCTOR_IDLE_XACT_WARN", "PGDOCTOR_TARGET"} <= named
    assert named - real == set()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_ends_with_examples_that_parse(
    command: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two or three examples end each command's --help, and each parses against the command as it is
    today (an option renamed or removed breaks its example here)."""
    config = tmp_path / "pgdoctor.toml"
    config.write_text("[targets.prod]\ndsn = 'service=prod'\n")
    monkeypatch.setenv("PGDOCTOR_CONFIG", str(config))
    examples = cli.EXAMPLES[command]
    assert 2 <= len(examples) <= 3
    group: Any = typer.main.get_command(app)
    sub = group.commands[command]
    help_text = sub.get_help(sub.make_context(command, ["--help"], resilient_parsing=True))
    assert help_text.rstrip().endswith(examples[-1]), help_text[-300:]
    for example in examples:
        words = shlex.split(example)
        assert words[:2] == ["pgdoctor", command], example
        with sub.make_context(command, words[2:]) as ctx:  # a usage error raises here
            assert ctx.params is not None
