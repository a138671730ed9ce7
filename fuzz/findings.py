"""What one schemathesis run found, read from its JUnit report, and the Markdown list of it.

Each failure in the report already says the route, the check, the request (as a curl command,
the key filtered out) and the answer (status and body); this module only gathers and prints.
"""

import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# A log record of the collector starts with uvicorn's level or logging's timestamp.
_RECORD = re.compile(r"^(?:[A-Z]+:\s|\d{4}-\d\d-\d\d )")
_CASE_ID = re.compile(r"^\d+\. Test Case ID: \S+\n", re.MULTILINE)
# A traceback's own exception lines: `module.Name: message` (or a bare name) at column 0.
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(?::|$)")


@dataclass(frozen=True)
class Finding:
    """A failed check (or a schemathesis error) on one route, for one backend and role."""

    backend: str
    role: str
    route: str  # "GET /v1/accounts/{account_id}", or "Stateful tests"
    kind: str  # "failure" or "error"
    code: str  # the check's code, e.g. "ST103", or the error's type
    text: str  # the report's own account: the check, the curl command, the answer


def read_junit(path: Path, *, backend: str, role: str) -> list[Finding]:
    """The findings of a JUnit report written by `st run --report junit`."""
    root = ElementTree.parse(path).getroot()
    findings = [
        Finding(
            backend=backend,
            role=role,
            route=case.get("name", "?"),
            kind=problem.tag,
            code=problem.get("message") or problem.get("type") or problem.tag,
            text=(problem.text or "").strip(),
        )
        for case in root.iter("testcase")
        for problem in case
        if problem.tag in ("failure", "error")
    ]
    return unique(findings)


def unique(findings: Iterable[Finding]) -> list[Finding]:
    """The findings without repeats (the same route, check and text but another test case id)."""
    seen: set[tuple[str, str, str, str, str]] = set()
    kept = []
    for finding in findings:
        key = (finding.backend, finding.role, finding.route, finding.code)
        text = _CASE_ID.sub("", finding.text)
        if (*key, text) not in seen:
            seen.add((*key, text))
            kept.append(finding)
    return kept


def server_exceptions(log: str) -> Counter[str]:
    """The exceptions the collector logged (a traceback's exception lines, outermost first),
    counted: what a 500 was underneath."""
    found: Counter[str] = Counter()
    records: list[list[str]] = []
    for line in log.splitlines():
        if _RECORD.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    for record in records:
        if not any(line.startswith("Traceback") for line in record):
            continue
        raised = [line[:300] for line in record[1:] if _RAISED.match(line) and line != "Traceback"]
        found[" <- ".join(reversed(raised))] += 1
    return found


def render_markdown(
    findings: Iterable[Finding],
    *,
    header: str,
    runs: Iterable[str],
    new: Iterable[str] = (),
    exceptions: dict[str, Counter[str]] | None = None,
) -> str:
    """A Markdown report: how it ran, what the server raised, a table of routes and checks,
    then every finding in full."""
    findings = list(findings)
    lines = [f"# {header}", "", *(f"- {run}" for run in runs), ""]
    new_runs = list(new)
    if new_runs:
        lines += ["Runs with failures beyond the baseline:", "", *(f"- {r}" for r in new_runs), ""]
    for backend, counted in (exceptions or {}).items():
        if counted:
            lines += [f"Exceptions in the collector's log ({backend}), outermost first:", ""]
            lines += [f"- {n} x `{text}`" for text, n in counted.most_common()]
            lines.append("")
    if not findings:
        return "\n".join([*lines, "No failures.", ""])
    lines += ["| backend | role | route | check |", "| --- | --- | --- | --- |"]
    lines += [f"| {f.backend} | {f.role} | `{f.route}` | {f.code} |" for f in findings]
    lines.append("")
    for finding in findings:
        lines += [
            f"## {finding.route} ({finding.backend}, {finding.role}): {finding.code}",
            "",
            "```",
            finding.text,
            "```",
            "",
        ]
    return "\n".join(lines)
