"""No credentials in the repository: every tracked file is scanned for key-shaped secrets.

The documented local development defaults (admin/admin for the embedded Airflow, the dummy
S3 keys of the embedded endpoint and of moto, `change-me` placeholders) are allowed by name.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key block": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "Slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\W{1,4}[A-Za-z0-9/+]{40}\b"),
}
# `password: x`, `FOO_SECRET=x`, `token = "x"` in configuration files (not code: `password: str` is a type).
ASSIGNMENT = re.compile(
    r"""(?ix)^\s*[-\w.]*(?:password|passwd|secret|token|api_key)[-\w.]*\s*[:=]\s*["']?([^\s"'#]*)"""
)
CONFIG_SUFFIXES = (".yaml", ".yml", ".env", ".ini", ".cfg", ".toml", ".conf", ".example", ".properties")
PLACEHOLDERS = {
    "",
    "change-me",
    "admin",  # the embedded platform's documented local login (loopback only)
    "continuum",  # the embedded S3 endpoint's dummy keys
    "testing",  # moto's
    "minioadmin",  # MinIO's documented default, in examples only
    "null",
    "none",
}


def _is_placeholder(value: str) -> bool:
    if value.lower() in PLACEHOLDERS or set(value) <= {"*", "x", "X"}:
        return True
    # a variable, a template, or the path of a file that holds the secret elsewhere
    return value.startswith(("${", "$", "<", "{{", "/", "./"))


def _names_a_secret_object(line: str) -> bool:
    key = re.split(r"[:=]", line, maxsplit=1)[0].strip().strip("-").strip().lower()
    return key.endswith(("secretname", "secret_name"))


def scan(path: Path, text: str) -> list[str]:
    """Findings in one file as `path:line: what`."""
    findings = []
    config = path.name.startswith(".env") or path.suffix in CONFIG_SUFFIXES or path.name == "docker-compose.yaml"
    for number, line in enumerate(text.splitlines(), 1):
        found = [f"{path}:{number}: {what}" for what, pattern in PATTERNS.items() if pattern.search(line)]
        findings += found
        match = ASSIGNMENT.match(line) if config and not found else None
        if match and _names_a_secret_object(line):
            continue  # e.g. Helm's `metadataSecretName: x` names a Kubernetes Secret, it holds none
        if match and not _is_placeholder(match.group(1)):
            findings.append(f"{path}:{number}: credential-like value {match.group(1)[:3]}...")
    return findings


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_holds_a_secret():
    files = tracked_files()
    assert len(files) > 50  # the scan really ran over the repository
    findings = []
    for path in files:
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        findings += scan(path.relative_to(REPO), data.decode("utf-8", errors="replace"))
    assert findings == []


# Assembled at run time so that this file itself stays clean for the scan above.
PLANTED = {
    "aws.py": ("key = '" + "AKIA" + "Z7Q2" * 4 + "'", "AWS access key id"),
    "id_rsa": ("-----BEGIN " + "RSA PRIVATE KEY-----", "private key block"),
    "notify.py": ("SLACK = '" + "xox" + "b-1234567890-abcdefghij'", "Slack token"),
    "creds.ini": ("aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY", "AWS secret access key"),
    "settings.yaml": ("  password: " + "hunter2-prod", "credential-like value"),
    ".env": ("REDIS_PASSWORD=" + "s3cr3t-value", "credential-like value"),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_secret_is_found(tmp_path, name):
    line, what = PLANTED[name]
    path = tmp_path / name
    path.write_text(f"# a file someone committed by mistake\n{line}\n")
    findings = scan(path, path.read_text())
    assert len(findings) == 1 and findings[0].startswith(f"{path}:2: {what}")


@pytest.mark.parametrize(
    "line",
    ["POSTGRES_PASSWORD=change-me", "  password: ${MLFLOW_DB_PASSWORD:?set it}", "    #   conn_password:", "password: admin"],
)
def test_documented_placeholders_pass(tmp_path, line):
    path = tmp_path / "example.yaml"
    assert scan(path, line) == []
