"""fuzz.findings: what a schemathesis JUnit report and the collector's log say, gathered."""

from pathlib import Path

from fuzz.findings import read_junit, render_markdown, server_exceptions

# The shape `st run --report junit` writes (schemathesis 4.32.5): one testcase per operation.
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites errors="1" failures="2" tests="3">
  <testsuite name="schemathesis" errors="1" failures="2" tests="3">
    <testcase name="POST /v1/accounts" time="0.29">
      <failure type="failure" message="ST103">1. Test Case ID: rGHNAs

- ST103 Undocumented status code

    Received: 400</failure>
      <failure type="failure" message="ST103">2. Test Case ID: xY12zz

- ST103 Undocumented status code

    Received: 400</failure>
    </testcase>
    <testcase name="GET /healthz" time="0.04" />
    <testcase name="GET /v1/gateways/{gateway_id}" time="0.01">
      <error type="error" message="Schema Error">Schema Error</error>
    </testcase>
  </testsuite>
</testsuites>
"""

LOG = """INFO:     Uvicorn running on http://127.0.0.1:8000
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "service.py", line 1, in store
    insert()
asyncpg.exceptions.CharacterNotInRepertoireError: invalid byte sequence for encoding "UTF8": 0x00

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "router.py", line 2, in post
sqlalchemy.exc.DBAPIError: (asyncpg.Error) invalid byte sequence for encoding "UTF8": 0x00
[SQL: INSERT INTO incidents (detail) VALUES ($1::VARCHAR)]
(Background on this error at: https://sqlalche.me/e/21/dbapi)
INFO:     127.0.0.1:4242 - "POST /v1/events HTTP/1.1" 500 Internal Server Error
"""


def test_a_report_gives_each_failure_once_with_its_route_and_check(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(JUNIT)
    findings = read_junit(report, backend="sqlite", role="admin")
    assert [(f.route, f.kind, f.code) for f in findings] == [
        ("POST /v1/accounts", "failure", "ST103"),
        ("GET /v1/gateways/{gateway_id}", "error", "Schema Error"),
    ]
    assert "Received: 400" in findings[0].text
    markdown = render_markdown(findings, header="Findings", runs=["sqlite, role admin"])
    assert "| sqlite | admin | `POST /v1/accounts` | ST103 |" in markdown


def test_the_log_gives_what_a_500_was_underneath_outermost_first() -> None:
    assert server_exceptions(LOG) == {
        'sqlalchemy.exc.DBAPIError: (asyncpg.Error) invalid byte sequence for encoding "UTF8": '
        "0x00 <- asyncpg.exceptions.CharacterNotInRepertoireError: invalid byte sequence for "
        'encoding "UTF8": 0x00': 1
    }
    assert server_exceptions("INFO:     nothing went wrong\n") == {}


def test_no_findings_say_so() -> None:
    assert render_markdown([], header="Findings", runs=[]).endswith("No failures.\n")
