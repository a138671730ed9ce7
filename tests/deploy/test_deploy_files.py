"""deploy/: what can be checked without systemd, Docker or a cluster: the files parse, run the
right commands on the right port, probe /healthz, run as non-root and are hardened; the unit
passes `systemd-analyze verify` and the install script `bash -n`, shellcheck and a dry run when
those tools exist here."""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "systemd" / "tollgate-edge.service"
INSTALL = DEPLOY / "install-gateway.sh"
SERVE = ["tollgate-cloud", "serve", "--host", "0.0.0.0", "--port", "8000"]
MIGRATE = ["tollgate-cloud", "migrate"]


def _k8s() -> dict[str, dict[str, Any]]:
    """Every manifest in deploy/k8s by kind."""
    documents = [
        document
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    return {document["kind"]: document for document in documents}


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "cloud" / "compose.yaml").read_text())
    return document


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_every_k8s_manifest_parses_and_names_the_namespace() -> None:
    manifests = _k8s()
    assert set(manifests) == {"Namespace", "Secret", "Job", "Deployment", "Service", "Ingress"}
    for kind, manifest in manifests.items():
        if kind != "Namespace":
            assert manifest["metadata"]["namespace"] == "tollgate", kind


def test_k8s_runs_serve_and_migrate_on_port_8000_as_non_root_with_healthz_probes() -> None:
    manifests = _k8s()
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == SERVE
    assert container["ports"][0]["containerPort"] == 8000
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": 8000}
    job = manifests["Job"]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == MIGRATE
    for spec in (pod, job):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["containers"][0]["envFrom"] == [{"secretRef": {"name": "tollgate-db"}}]
    assert "TOLLGATE_DB" in manifests["Secret"]["stringData"]
    service_port = manifests["Service"]["spec"]["ports"][0]
    assert (service_port["port"], service_port["targetPort"]) == (8000, 8000)
    selector = manifests["Service"]["spec"]["selector"]
    assert (
        selector.items()
        <= manifests["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )
    backend = manifests["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"] == {"name": "tollgate-collector", "port": {"number": 8000}}


def test_compose_migrates_once_then_serves_on_8000_against_a_healthy_postgres() -> None:
    services = _compose()["services"]
    assert services["db"]["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["db"]["volumes"])
    assert services["migrate"]["command"] == MIGRATE
    assert services["migrate"]["restart"] == "no"
    collector = services["collector"]
    assert collector["command"] == SERVE
    assert collector["ports"] == ["8000:8000"]
    assert collector["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    for name in ("migrate", "collector"):
        url = services[name]["environment"]["TOLLGATE_DB"]
        assert url.startswith("postgresql://") and "@db:5432/" in url


def test_the_image_runs_serve_on_8000_as_a_non_root_user() -> None:
    text = (DEPLOY / "cloud" / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert 'pip install --no-cache-dir "${wheel}[cloud]"' in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"^EXPOSE 8000$", text, re.MULTILINE)
    cmd = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert yaml.safe_load(cmd[-1]) == SERVE
    assert "/healthz" in text


def test_the_unit_is_hardened_and_runs_the_agent() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["ExecStart"] == (
        "/opt/tollgate/venv/bin/tollgate-edge run --config /etc/tollgate/site.toml"
    )
    assert service["User"] == "tollgate"
    assert set(service["SupplementaryGroups"].split()) == {"dialout", "bluetooth"}
    expected = {
        "StateDirectory": "tollgate",
        "ConfigurationDirectory": "tollgate",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert int(service["RestartSec"]) > 0 and int(service["TimeoutStopSec"]) > 0
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # verify insists that ExecStart exists: point it at this checkout's agent.
    agent = Path(sys.executable).parent / "tollgate-edge"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/tollgate/venv/bin/tollgate-edge", str(agent)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr, result.stderr  # no warnings about our unit either


def test_the_install_script_parses_and_is_shellcheck_clean() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed here")
    result = subprocess.run([shellcheck, str(INSTALL)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_install_script_dry_run_prints_every_step_and_changes_nothing() -> None:
    user_before = _has_user("tollgate")
    result = subprocess.run(
        [str(INSTALL), "--dry-run", "--drivers", "modbus,it100", "--gateway-id", "site-1-gw1"],
        capture_output=True,
        text=True,
        check=True,
    )
    steps = [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]
    joined = "\n".join(steps)
    assert "python3 -m venv /opt/tollgate/venv" in joined or "/opt/tollgate/venv/bin/pip" in joined
    assert re.search(r"pip install --upgrade \S+\[edge\]", joined)
    assert "tollgate-edge init --drivers modbus,it100 --out /etc/tollgate/site.toml" in joined
    assert "--gateway-id site-1-gw1" in joined
    assert f"install -m 0644 {UNIT} /etc/systemd/system/tollgate-edge.service" in joined
    assert steps[-2:] == ["systemctl daemon-reload", "systemctl enable tollgate-edge.service"]
    assert _has_user("tollgate") == user_before


def _has_user(name: str) -> bool:
    return subprocess.run(["getent", "passwd", name], capture_output=True).returncode == 0


def test_the_install_script_refuses_an_unknown_option() -> None:
    result = subprocess.run([str(INSTALL), "--colour"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown option --colour" in result.stderr
