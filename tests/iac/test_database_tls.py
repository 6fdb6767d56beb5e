"""Issue 19 §4: the aggregator's database connection is TLS with the server
certificate verified (`sslmode=verify-full`): the Terraform module's URL asks
for it, the CA bundle it names is in the image, the parameter group forces
TLS, and the aggregator's PostgreSQL driver is built with TLS support."""

from __future__ import annotations

import re
import tomllib

from conftest import DOCKER_DIR, REPO, TERRAFORM_DIR

MODULE = TERRAFORM_DIR / "modules" / "aggregator"


def database_url_template() -> str:
    text = (MODULE / "secrets.tf").read_text()
    urls = re.findall(r'"(postgres://[^" ]*)"', text)
    assert len(urls) == 1, urls
    return urls[0]


def rds_ca_bundle_path() -> str:
    match = re.search(r'^\s*rds_ca_bundle_path\s*=\s*"([^"]+)"', (MODULE / "main.tf").read_text(), flags=re.M)
    assert match, "local.rds_ca_bundle_path is not set in the aggregator module"
    return match.group(1)


def test_database_url_verifies_the_server_certificate_and_host():
    url = database_url_template()
    query = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    assert query["sslmode"] == "verify-full", url
    assert query["sslrootcert"] == "${local.rds_ca_bundle_path}", url


def test_no_terraform_file_asks_for_a_weaker_sslmode():
    weak = re.compile(r"sslmode=(disable|allow|prefer|require|verify-ca)\b")
    found = [str(p.relative_to(REPO)) for p in TERRAFORM_DIR.rglob("*.tf") if weak.search(p.read_text())]
    assert found == []


def test_the_image_carries_the_ca_bundle_the_url_names():
    path = rds_ca_bundle_path()
    text = (DOCKER_DIR / "aggregator.Dockerfile").read_text()
    build, runtime = text.split("FROM gcr.io/distroless/cc-debian12:nonroot", 1)
    # The build stage fetches RDS's bundle over HTTPS...
    fetched = re.search(r"-o\s+(\S+)\s*\\\s*\n\s*https://truststore\.pki\.rds\.amazonaws\.com/global/global-bundle\.pem", build)
    assert fetched, "the build stage does not fetch the RDS CA bundle"
    # ...and the runtime image has it where the URL's sslrootcert points.
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)$", runtime, flags=re.M)
    assert (fetched.group(1), path) in copies, copies


def test_rds_forces_tls():
    text = (MODULE / "database.tf").read_text()
    assert re.search(r'name\s*=\s*"rds\.force_ssl"\s*\n\s*value\s*=\s*"1"', text)


def test_the_postgres_driver_is_built_with_tls():
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    features = manifest["workspace"]["dependencies"]["sqlx"]["features"]
    tls = [f for f in features if f.startswith("tls-") and f != "tls-none"]
    assert tls, f"sqlx has no TLS feature ({features}): sslmode=verify-full could not connect"
