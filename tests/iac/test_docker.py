"""Dockerfiles: multi-stage, cross-compiling for both architectures,
distroless non-root runtime, building a binary that exists in the workspace."""

from __future__ import annotations

import re
import tomllib

import pytest

from conftest import DOCKER_DIR, REPO

IMAGES = {"agent": "canopy-agent", "aggregator": "canopy-aggregator"}


def stages(text: str) -> list[str]:
    return re.findall(r"^FROM\s+(.+)$", text, flags=re.M)


@pytest.mark.parametrize("component,binary", IMAGES.items())
def test_dockerfile_shape(component, binary):
    text = (DOCKER_DIR / f"{component}.Dockerfile").read_text()
    froms = stages(text)
    assert len(froms) == 2, froms
    assert froms[0].startswith("--platform=$BUILDPLATFORM rust:")
    assert froms[1] == "gcr.io/distroless/cc-debian12:nonroot"
    # the last USER of the runtime stage is the distroless nonroot uid
    runtime = text.split(froms[1], 1)[1]
    assert re.findall(r"^USER\s+(\S+)", runtime, flags=re.M) == ["65532:65532"]
    assert f"-p {binary} --bin {binary}" in text
    assert f'ENTRYPOINT ["/usr/local/bin/{binary}"]' in text
    assert "arm64)" in text and "amd64)" in text
    assert "--platform linux/arm64,linux/amd64" in text
    assert (DOCKER_DIR / f"{component}.Dockerfile.dockerignore").read_text().count("target") == 1


@pytest.mark.parametrize("component,binary", IMAGES.items())
def test_binary_is_a_workspace_package(component, binary):
    manifest = tomllib.loads((REPO / component / "Cargo.toml").read_text())
    assert manifest["package"]["name"] == binary
    bins = [b["name"] for b in manifest.get("bin", [])] or [binary]
    assert binary in bins
