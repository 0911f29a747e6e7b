"""Prometheus's own tools on pgdoctor's `--format openmetrics` output: `promtool check metrics`, and
`promtool test rules` on series built from real output (Debian's `prometheus` package has promtool)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

PROMTOOL = shutil.which("promtool")
RULES = ROOT / "contrib" / "prometheus" / "pgdoctor.rules.yml"
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def promtool(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def check_metrics(text: str) -> None:
    """promtool's parser and linter accept the exposition (it ends with OpenMetrics' `# EOF`)."""
    assert text.endswith("# EOF\n"), text[-200:]
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr


def parse(text: str) -> Series:
    """Every sample of an exposition, read by prometheus_client's strict OpenMetrics parser (which refuses
    a repeated series, a bad escape, a missing `# EOF`): (name, labels) -> value."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    out: Series = {}
    for fam in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"repeated series {key}"
            out[key] = s.value
    return out


def values(series: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in series.items() if n == name and want <= lab}


def one(series: Series, name: str, **labels: str) -> float:
    found = values(series, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return next(iter(found.values()))


def _quoted(value: str) -> str:
    """A PromQL string's escapes (a label value in a series selector)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_line(name: str, labels: frozenset[tuple[str, str]], instance: str) -> str:
    """A promtool series selector: the labels pgdoctor wrote plus the instance a scrape adds."""
    escaped = ",".join(f'{k}="{_quoted(v)}"' for k, v in sorted(labels))
    sep = "," if escaped else ""
    return f'{name}{{instance="{instance}"{sep}{escaped}}}'


def _alert_labels(labels: dict[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in labels.items() if k != "instance"},
        "alertstate": "firing",
        "severity": "warning",
    }


def run_rule_tests(outputs: dict[str, str], firing: list[dict[str, str]], minutes: int = 10) -> None:
    """`promtool test rules` on the shipped rules with every series of real outputs ({instance:
    exposition}) held at its value for `minutes` minutes: at the end exactly the alerts `firing` (their
    labels, alertname included; severity warning) fire (`ALERTS{alertstate="firing"}`, compared whole)."""
    import json

    input_series: list[dict[str, Any]] = []
    for instance, text in outputs.items():
        for (name, labels), value in parse(text).items():
            input_series.append(
                {"series": series_line(name, labels, instance), "values": f"{value!r}x{minutes}"}
            )
    expected = [
        {
            "labels": series_line("ALERTS", frozenset(_alert_labels(labels).items()), labels["instance"]),
            "value": 1,
        }
        for labels in firing
    ]
    doc = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertstate="firing"}',
                        "eval_time": f"{minutes}m",
                        "exp_samples": expected,
                    }
                ],
            }
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "real.test.yml"
        path.write_text(json.dumps(doc))  # YAML is a superset of JSON
        result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
