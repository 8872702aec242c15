"""What kubernetes-validate cannot see in deploy/kubernetes.

kubernetes-validate checks each object against the schema of its kind, but
it has no schema for custom resources (KEDA's ScaledObject, the Prometheus
Operator's ServiceMonitor) or kustomize's Kustomization, and it looks at one
object at a time. This module checks:

- custom resources against the fields their CRDs define, for the parts the
  manifests use (unknown fields refused, as --strict does), and the KEDA
  behavior block against Kubernetes's own HPA schema;
- the kustomization: every file it lists exists, and the files left out of
  it on purpose stay out;
- what one object says of another: Service, PDB and ServiceMonitor selectors
  match the pods of a Deployment, named target ports exist on those pods,
  scale targets, Secrets and their keys, and volume claims exist, and every
  namespace used is created;
- the drain: an edge's grace period outlasts its preStop sleep plus
  TINSEL_DRAIN_S.

Each function returns a list of problems (strings); empty means OK.
"""

import os

import jsonschema
import kubernetes_validate
import yaml

# Files the kustomization must not list: applied by hand, or an
# alternative to what it does list (see kustomization.yaml).
KEPT_OUT = {"secret.yaml", "keda-scaledobject.yaml", "servicemonitor.yaml"}
# Namespaces objects here go into that something else creates: the
# prometheus-adapter ConfigMap goes where the adapter runs.
EXTERNAL_NAMESPACES = {"monitoring"}

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
STRING_MAP = {"type": "object", "additionalProperties": STRING}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": STRING,
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": STRING},
                },
            },
        },
    },
}
METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": STRING, "namespace": STRING, "labels": STRING_MAP,
                   "annotations": STRING_MAP},
}

# keda.sh/v1alpha1 ScaledObject (KEDA 2.x CRD).
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"apiVersion": STRING, "kind": STRING, "name": STRING,
                                   "envSourceContainerName": STRING},
                },
                "pollingInterval": INTEGER,
                "cooldownPeriod": INTEGER,
                "initialCooldownPeriod": INTEGER,
                "idleReplicaCount": INTEGER,
                "minReplicaCount": INTEGER,
                "maxReplicaCount": INTEGER,
                "fallback": {"type": "object"},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            # behavior: checked with the HPA schema below.
                            "properties": {"name": STRING, "behavior": {"type": "object"}},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": STRING,
                            "name": STRING,
                            # KEDA reads trigger metadata as map[string]string:
                            # threshold: 500 (a number) is refused.
                            "metadata": STRING_MAP,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "authenticationRef": {"type": "object"},
                            "useCachedMetrics": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}

# What each trigger type used here needs in its metadata.
TRIGGER_METADATA = {
    "prometheus": {"serverAddress", "query", "threshold"},
    "cpu": {"value"},
    "memory": {"value"},
}

# monitoring.coreos.com/v1 ServiceMonitor (the fields used here).
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": LABEL_SELECTOR,
                "namespaceSelector": {"type": "object"},
                "jobLabel": STRING,
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": STRING,
                            "targetPort": {"type": ["string", "integer"]},
                            "path": STRING,
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                            "scrapeTimeout": {"type": "string",
                                              "pattern": "^([0-9]+(ms|s|m|h))+$"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}

# kustomize.config.k8s.io/v1beta1 Kustomization (the fields used here).
KUSTOMIZATION = {
    "type": "object",
    "required": ["apiVersion", "kind", "resources"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "kustomize.config.k8s.io/v1beta1"},
        "kind": {"const": "Kustomization"},
        "namespace": STRING,
        "resources": {"type": "array", "items": STRING, "minItems": 1},
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": STRING, "newName": STRING, "newTag": STRING,
                               "digest": STRING},
            },
        },
        "labels": {"type": "array"},
        "commonAnnotations": STRING_MAP,
    },
}

CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"): KUSTOMIZATION,
}


def load_documents(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def has_custom_schema(doc):
    return (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_SCHEMAS


def check_custom(doc, k8s_version):
    """The fields of a custom resource or a Kustomization."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    schema = CUSTOM_SCHEMAS.get(key)
    if schema is None:
        return [f"no schema for {key[1]} {key[0]}: add one to kube_check.py"]
    problems = [
        f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}: "
        f"{'.'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
        for err in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    if problems or key[1] != "ScaledObject":
        return problems
    spec = doc["spec"]
    for i, trigger in enumerate(spec["triggers"]):
        needed = TRIGGER_METADATA.get(trigger["type"])
        if needed is None:
            problems.append(f"triggers[{i}]: type {trigger['type']!r} is not one this "
                            "check knows (add what it needs to TRIGGER_METADATA)")
            continue
        missing = needed - set(trigger["metadata"])
        if missing:
            problems.append(f"triggers[{i}] ({trigger['type']}): metadata lacks "
                            f"{', '.join(sorted(missing))}")
    behavior = (spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
                .get("behavior"))
    if behavior is not None:
        # The HPA KEDA makes carries this block as it is.
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": doc["metadata"]["name"]},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"},
                     "maxReplicas": 1, "behavior": behavior},
        }
        try:
            kubernetes_validate.validate(hpa, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            problems.append(f"advanced.horizontalPodAutoscalerConfig.{path}: {err.message}")
    return problems


def check_kustomization(directory):
    path = os.path.join(directory, "kustomization.yaml")
    problems = []
    (kustomization,) = load_documents(path)
    listed = kustomization.get("resources") or []
    for name in listed:
        if not os.path.exists(os.path.join(directory, name)):
            problems.append(f"kustomization.yaml lists {name}, which does not exist")
        if name in KEPT_OUT:
            problems.append(f"kustomization.yaml lists {name}, which stays out of it "
                            "(see its comment)")
    present = {n for n in os.listdir(directory) if n.endswith(".yaml")}
    for name in sorted(present - set(listed) - KEPT_OUT - {"kustomization.yaml"}):
        problems.append(f"{name} is neither in kustomization.yaml nor kept out on purpose")
    return problems


def selects(selector, labels):
    """A Service's plain selector or a LabelSelector against pod labels."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def env_value(container, name):
    for var in container.get("env") or []:
        if var.get("name") == name:
            return var.get("value")
    return None


def check_references(docs):
    """What objects say of each other. docs: (file, object) pairs."""
    problems = []
    by_kind = {}
    for file, doc in docs:
        by_kind.setdefault(doc.get("kind"), []).append((file, doc))

    def named(kind, namespace, name):
        return [d for _, d in by_kind.get(kind, [])
                if d["metadata"]["name"] == name
                and d["metadata"].get("namespace") == namespace]

    namespaces = {d["metadata"]["name"] for _, d in by_kind.get("Namespace", [])}
    workloads = [(d["metadata"].get("namespace"), d) for _, d in by_kind.get("Deployment", [])]

    for file, doc in docs:
        ns = doc.get("metadata", {}).get("namespace")
        what = f"{file}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if ns and ns not in namespaces | EXTERNAL_NAMESPACES:
            problems.append(f"{what}: namespace {ns} is not created by these manifests")

    for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor"):
        for file, doc in by_kind.get(kind, []):
            ns = doc["metadata"].get("namespace")
            what = f"{file}: {kind}/{doc['metadata']['name']}"
            if kind == "ServiceMonitor":
                services = [s for _, s in by_kind.get("Service", [])
                            if s["metadata"].get("namespace") == ns
                            and selects(doc["spec"]["selector"], s["metadata"].get("labels", {}))]
                if not services:
                    problems.append(f"{what}: its selector matches no Service")
                for endpoint in doc["spec"]["endpoints"]:
                    for service in services:
                        ports = {p.get("name") for p in service["spec"]["ports"]}
                        if endpoint.get("port") and endpoint["port"] not in ports:
                            problems.append(f"{what}: Service {service['metadata']['name']} "
                                            f"has no port named {endpoint['port']}")
                continue
            selector = doc["spec"]["selector"]
            pods = [d["spec"]["template"] for wns, d in workloads
                    if wns == ns and selects(selector, d["spec"]["template"]["metadata"]["labels"])]
            if not pods:
                problems.append(f"{what}: its selector matches the pods of no Deployment")
            if kind != "Service":
                continue
            for port in doc["spec"]["ports"]:
                target = port.get("targetPort")
                if not isinstance(target, str):
                    continue
                for pod in pods:
                    names = {(p.get("name"), p.get("protocol", "TCP"))
                             for c in pod["spec"]["containers"] for p in c.get("ports") or []}
                    if (target, port.get("protocol", "TCP")) not in names:
                        problems.append(f"{what}: port {port.get('name')} targets {target}, "
                                        "which its pods do not have")

    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for file, doc in by_kind.get(kind, []):
            ref = doc["spec"]["scaleTargetRef"]
            if not named(ref.get("kind", "Deployment"), doc["metadata"].get("namespace"),
                         ref["name"]):
                problems.append(f"{file}: {kind}/{doc['metadata']['name']} scales "
                                f"{ref.get('kind', 'Deployment')}/{ref['name']}, "
                                "which these manifests do not define")

    for file, doc in by_kind.get("Deployment", []):
        ns = doc["metadata"].get("namespace")
        what = f"{file}: Deployment/{doc['metadata']['name']}"
        pod = doc["spec"]["template"]["spec"]
        if not selects(doc["spec"]["selector"], doc["spec"]["template"]["metadata"]["labels"]):
            problems.append(f"{what}: its selector does not match its own pod template")
        for volume in pod.get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and not named("PersistentVolumeClaim", ns, claim):
                problems.append(f"{what}: volume {volume['name']} claims {claim}, "
                                "which is not defined")
        for container in pod["containers"]:
            for var in container.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if not ref:
                    continue
                secrets = named("Secret", ns, ref["name"])
                if not secrets:
                    problems.append(f"{what}: {var['name']} reads Secret {ref['name']}, "
                                    "which is not defined")
                elif not any(ref["key"] in {**(s.get("data") or {}), **(s.get("stringData") or {})}
                             for s in secrets):
                    problems.append(f"{what}: {var['name']} reads key {ref['key']}, "
                                    f"which Secret {ref['name']} does not have")
            drain = env_value(container, "TINSEL_DRAIN_S")
            if drain is None:
                continue
            sleep = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
            needed = int(drain) + int(sleep.get("seconds", 0))
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if grace <= needed:
                problems.append(f"{what}: terminationGracePeriodSeconds {grace} does not "
                                f"outlast the preStop sleep and the drain ({needed} s)")
    return problems
