"""Checks deploy/ offline, then proves that each check rejects a broken copy.

Run by scripts/validate-deploy inside its venv. The checks:

- deploy/kubernetes: kubernetes-validate --strict against Kubernetes
  KUBERNETES_VERSION, file by file; custom resources it has no schema for
  (KEDA's ScaledObject, ServiceMonitor, Kustomization) and what objects say
  of each other: kube_check.py;
- deploy/heat: heat_validate.py (Heat's own engine, strict), the top
  template once per scaling mode (its alarms are conditional), the nested
  edge template on its own too; the edge's cloud-config as Heat renders it
  (its files are deploy/'s, its TOML parses); the install script with
  `sh -n` and four installs of made-up releases;
- deploy/systemd: systemd-analyze verify, on a copy whose ExecStart names a
  stand-in binary (verify wants the binary to exist); any message fails;
- deploy/Containerfile: hadolint.

Then each entry of BROKEN is applied to a copy of deploy/ and its check must
fail. One line per check, OK, FAIL or SKIP; a last line of counts; exit 1 on
any FAIL.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib

# No __pycache__ beside the sources in the work tree.
sys.dont_write_bytecode = True

import kube_check  # noqa: E402

KUBERNETES_VERSION = "1.33.0"
# systemd-analyze security's overall exposure (0 to 10) the unit may have;
# it is at 1.4 (the rest is a service that needs the network and its
# interfaces).
MAX_EXPOSURE = "2.0"
VENV_BIN = os.path.dirname(sys.executable)
# kubernetes-validate's message, shortened to the object and the error.
ERROR_LINE = re.compile(r"^ERROR \S+ did not validate for resource (\S+) against version \S+: (.*)")


def run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


# Each check takes the deploy/ folder to look at and returns its problems.

def kubernetes_file(name):
    def check(deploy):
        path = os.path.join(deploy, "kubernetes", name)
        code, out = run([os.path.join(VENV_BIN, "kubernetes-validate"), "--strict", "--quiet",
                         "-k", KUBERNETES_VERSION, path])
        problems = [ERROR_LINE.sub(r"\1: \2", line) for line in out.splitlines()
                    if line.startswith("ERROR")]
        if code and not problems:
            problems = [out or f"kubernetes-validate exited {code}"]
        for doc in kube_check.load_documents(path):
            if kube_check.has_custom_schema(doc):
                problems += kube_check.check_custom(doc, KUBERNETES_VERSION)
        for line in out.splitlines():
            unknown = re.search(r"Couldn't find schema for kind (\S+) with api version (\S+)", line)
            if unknown and (unknown[2], unknown[1]) not in kube_check.CUSTOM_SCHEMAS:
                problems.append(f"{unknown[1]} {unknown[2]}: no schema here or in kube_check.py")
        return problems
    return check


def kubernetes_references(deploy):
    directory = os.path.join(deploy, "kubernetes")
    docs = [(name, doc) for name in sorted(os.listdir(directory))
            if name.endswith(".yaml") and name != "kustomization.yaml"
            for doc in kube_check.load_documents(os.path.join(directory, name))]
    return kube_check.check_kustomization(directory) + kube_check.check_references(docs)


def heat_template(name, **parameters):
    def check(deploy):
        import heat_validate  # Heat takes a second to import: only when asked.
        error = heat_validate.check(os.path.join(deploy, "heat", name), parameters)
        return [error] if error else []
    return check


# What the edge's cloud-config is rendered with.
EDGE_PARAMETERS = {
    "origin_urls": "rtmp://origin-a:1935,rtmp://origin-b:1935",
    "cluster_secret": "0123456789abcdef0123456789abcdef",
    "release_url": "https://releases.example/tinsel-0.1.0.tar.gz",
    "release_sha256": "",
    "drain_s": "25",
}


def edge_cloud_config(deploy):
    """The edge's cloud-config as Heat renders it: the files it writes are
    what deploy/ holds and what the unit reads, and the config parses."""
    import heat_validate
    try:
        config = heat_validate.resolve(os.path.join(deploy, "heat", "edge.yaml"), "cloud_config",
                                       "cloud_config", EDGE_PARAMETERS)
    except Exception as err:
        return [f"Heat cannot render it: {err}"]
    files = {f["path"]: f for f in config.get("write_files", [])}
    with open(os.path.join(deploy, "systemd", "tinsel.service")) as f:
        unit = f.read()
    with open(os.path.join(deploy, "heat", "tinsel-install.sh")) as f:
        installer = f.read()
    problems = []
    exec_start = re.search(r"^ExecStart=(\S+) serve --config (\S+)", unit, re.M)
    env_file = re.search(r"^EnvironmentFile=-?(\S+)", unit, re.M)
    if not exec_start or not env_file:
        return ["the unit has no ExecStart=... serve --config FILE or no EnvironmentFile="]
    binary, config_path = exec_start[1], exec_start[2]
    wanted = {
        "/etc/systemd/system/tinsel.service": (unit, "0644"),
        "/usr/local/sbin/tinsel-install": (installer, "0755"),
        config_path: (None, "0644"),
        env_file[1]: (f"TINSEL_CLUSTER_SECRET={EDGE_PARAMETERS['cluster_secret']}\n", "0600"),
    }
    for path, (content, mode) in wanted.items():
        if path not in files:
            problems.append(f"writes no {path}")
            continue
        if content is not None and files[path]["content"] != content:
            problems.append(f"{path} is not what deploy/ holds or expects: "
                            f"{files[path]['content'][:60]!r}")
        if files[path].get("permissions") != mode:
            problems.append(f"{path} has mode {files[path].get('permissions')}, not {mode}")
    if config_path in files:
        try:
            toml = tomllib.loads(files[config_path]["content"])
        except tomllib.TOMLDecodeError as err:
            problems.append(f"{config_path} is not TOML: {err}")
        else:
            if toml.get("origin") != EDGE_PARAMETERS["origin_urls"].split(","):
                problems.append(f"{config_path}: origin is {toml.get('origin')!r}")
            if toml.get("drain_s") != int(EDGE_PARAMETERS["drain_s"]):
                problems.append(f"{config_path}: drain_s is {toml.get('drain_s')!r}")
            if "webrtc_public_ip" not in toml:
                problems.append(f"{config_path}: no webrtc_public_ip")
    install = [EDGE_PARAMETERS["release_url"], EDGE_PARAMETERS["release_sha256"]]
    runcmd = config.get("runcmd") or []
    if not runcmd or runcmd[0] != ["/usr/local/sbin/tinsel-install", *install]:
        problems.append(f"runcmd does not start with the install: {runcmd[:1]}")
    if ["systemctl", "enable", "--now", "tinsel.service"] not in runcmd:
        problems.append("runcmd does not enable and start tinsel.service")
    if os.path.dirname(binary) != "/opt/tinsel" or "/opt/tinsel}" not in installer:
        problems.append(f"the unit runs {binary}; the install script installs elsewhere")
    return problems


def install_script(deploy):
    """sh -n, then installs of made-up releases from file:// URLs: both
    tarball layouts, a wrong checksum and a release without its site."""
    script = os.path.join(deploy, "heat", "tinsel-install.sh")
    code, out = run(["sh", "-n", script])
    if code:
        return [out or f"sh -n exited {code}"]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        def release(name, top, with_site=True):
            root = os.path.join(tmp, name)
            folder = os.path.join(root, top)
            os.makedirs(os.path.join(folder, "site") if with_site else folder)
            with open(os.path.join(folder, "tinsel"), "w") as f:
                f.write("#!/bin/sh\n")
            if with_site:
                with open(os.path.join(folder, "site", "index.html"), "w") as f:
                    f.write("<!doctype html>\n")
            tarball = os.path.join(tmp, f"{name}.tar.gz")
            with tarfile.open(tarball, "w:gz") as tar:
                for entry in sorted(os.listdir(root)):
                    tar.add(os.path.join(root, entry), arcname=entry)
            with open(tarball, "rb") as f:
                return "file://" + tarball, hashlib.sha256(f.read()).hexdigest()

        def install(url, checksum=""):
            prefix = os.path.join(tmp, "opt", "tinsel")
            proc = subprocess.run(["sh", script, url, checksum], capture_output=True, text=True,
                                  env={**os.environ, "TINSEL_PREFIX": prefix})
            return proc.returncode, prefix

        for name, top in (("flat", ""), ("foldered", "tinsel-0.1.0")):
            url, checksum = release(name, top)
            code, prefix = install(url, checksum)
            binary = os.path.join(prefix, "tinsel")
            if code or not os.access(binary, os.X_OK) or not os.path.isfile(
                    os.path.join(prefix, "site", "index.html")):
                problems.append(f"a {name} release did not install as tinsel with site/ "
                                f"beside it (exit {code})")
        url, _ = release("checked", "")
        if install(url, "0" * 64)[0] == 0:
            problems.append("a release whose checksum differs was installed")
        url, checksum = release("siteless", "", with_site=False)
        if install(url, checksum)[0] == 0:
            problems.append("a release without its site folder was installed")
    return problems


def systemd_unit(deploy, argv=("verify",)):
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = os.path.join(tmp, "tinsel")
        with open(stand_in, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(stand_in, 0o755)
        with open(os.path.join(deploy, "systemd", "tinsel.service")) as f:
            unit = f.read().replace("/opt/tinsel/tinsel", stand_in)
        path = os.path.join(tmp, "tinsel.service")
        with open(path, "w") as f:
            f.write(unit)
        code, out = run(["systemd-analyze", *argv, path])
    if argv[0] == "security":
        # Only the verdict: its table lists every setting, passed or not.
        verdict = [line for line in out.splitlines() if "exposure level" in line]
        return ([f"{verdict[-1] if verdict else out} (at most {MAX_EXPOSURE} wanted)"]
                if code else [])
    lines = [line.replace(path, "tinsel.service") for line in out.splitlines()]
    return lines or ([f"systemd-analyze exited {code}"] if code else [])


def systemd_exposure(deploy):
    threshold = str(int(float(MAX_EXPOSURE) * 10))
    return systemd_unit(deploy, ("security", "--offline=yes", f"--threshold={threshold}"))


def containerfile(deploy):
    code, out = run([os.path.join(VENV_BIN, "hadolint"), "--no-color",
                     os.path.join(deploy, "Containerfile")])
    return [line.split(":", 1)[-1] for line in out.splitlines()] or (
        [f"hadolint exited {code}"] if code else [])


def skip_reason(what):
    if what == "systemd" and not shutil.which("systemd-analyze"):
        return "systemd-analyze not installed (Debian: apt-get install systemd)"
    return None


KUBERNETES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kubernetes")
KUBERNETES_FILES = sorted(n for n in os.listdir(KUBERNETES_DIR) if n.endswith(".yaml"))


def kubernetes_what(name):
    kinds = sorted({d["kind"] for d in kube_check.load_documents(os.path.join(KUBERNETES_DIR, name))
                    if kube_check.has_custom_schema(d)})
    what = f"kubernetes-validate --strict, {KUBERNETES_VERSION}"
    return what + (f"; {', '.join(kinds)}: kube_check" if kinds else "")


# id: (what is shown, what it checks, check, what it needs)
CHECKS = {
    **{n: (f"deploy/kubernetes/{n}", kubernetes_what(n), kubernetes_file(n), None)
       for n in KUBERNETES_FILES},
    "references": ("deploy/kubernetes", "kustomization and cross-references",
                   kubernetes_references, None),
    "heat": ("deploy/heat/tinsel-edges.yaml", "Heat engine, strict, scale_on=cpu",
             heat_template("tinsel-edges.yaml"), None),
    "heat-viewers": ("deploy/heat/tinsel-edges.yaml",
                     "Heat engine, strict, scale_on=viewers, SSH open",
                     heat_template("tinsel-edges.yaml", scale_on="viewers",
                                   ssh_cidr="192.0.2.0/24"), None),
    "heat-nested": ("deploy/heat/edge.yaml", "Heat engine, strict, on its own",
                    heat_template("edge.yaml"), None),
    "cloud-config": ("deploy/heat/edge.yaml", "its cloud-config as Heat renders it",
                     edge_cloud_config, None),
    "install-script": ("deploy/heat/tinsel-install.sh", "sh -n, four installs",
                       install_script, None),
    "systemd": ("deploy/systemd/tinsel.service", "systemd-analyze verify", systemd_unit,
                "systemd"),
    "systemd-security": ("deploy/systemd/tinsel.service",
                         f"systemd-analyze security, exposure at most {MAX_EXPOSURE}",
                         systemd_exposure, "systemd"),
    "containerfile": ("deploy/Containerfile", "hadolint", containerfile, None),
}

# (what the copy breaks, file under deploy/, text or pattern, replacement,
# the id of the check that must reject it)
BROKEN = [
    ('Deployment replicas: "three"', "kubernetes/edge.yaml",
     "  replicas: 3\n", '  replicas: "three"\n', "edge.yaml"),
    ("Deployment with an unknown field (terminationGracePeriod)", "kubernetes/edge.yaml",
     "terminationGracePeriodSeconds: 45", "terminationGracePeriod: 45", "edge.yaml"),
    ("HPA target misspelt (averageUtilisation)", "kubernetes/autoscaling.yaml",
     "averageUtilization: 70", "averageUtilisation: 70", "autoscaling.yaml"),
    ("ScaledObject threshold a number, not a string", "kubernetes/keda-scaledobject.yaml",
     'threshold: "500"', "threshold: 500", "keda-scaledobject.yaml"),
    ("ScaledObject behavior with an unknown field", "kubernetes/keda-scaledobject.yaml",
     "stabilizationWindowSeconds: 300", "stabilisationWindowSeconds: 300",
     "keda-scaledobject.yaml"),
    ("ServiceMonitor endpoint with an unknown field", "kubernetes/servicemonitor.yaml",
     "interval: 15s", "intervall: 15s", "servicemonitor.yaml"),
    ("edge Service selecting no pod", "kubernetes/edge.yaml",
     "  selector:\n    app.kubernetes.io/name: tinsel\n    app.kubernetes.io/component: edge\n",
     "  selector:\n    app.kubernetes.io/name: tinsel\n    app.kubernetes.io/component: edges\n",
     "references"),
    ("edge grace period shorter than preStop plus drain", "kubernetes/edge.yaml",
     "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "references"),
    ("Heat resource type misspelt (OS::Octavia::LoadBalancr)", "heat/tinsel-edges.yaml",
     "type: OS::Octavia::LoadBalancer\n", "type: OS::Octavia::LoadBalancr\n", "heat"),
    ("Heat property the resource lacks (PoolMember protocl_port)", "heat/edge.yaml",
     "      protocol_port: 1935\n", "      protocl_port: 1935\n", "heat"),
    ("Heat get_param of an undefined parameter (top)", "heat/tinsel-edges.yaml",
     "min_size: {get_param: min_size}", "min_size: {get_param: minsize}", "heat"),
    ("Heat get_param of an undefined parameter (nested)", "heat/edge.yaml",
     "key_name: {get_param: key_name}", "key_name: {get_param: keyname}", "heat-nested"),
    ("Heat get_attr of a resource that does not exist", "heat/tinsel-edges.yaml",
     "value: {get_attr: [scale_up, signal_url]}", "value: {get_attr: [scaleup, signal_url]}",
     "heat"),
    ("Heat Prometheus alarm property misspelt (treshold)", "heat/tinsel-edges.yaml",
     "      threshold: {get_param: viewers_scale_up}",
     "      treshold: {get_param: viewers_scale_up}", "heat-viewers"),
    ("edge env file written with a str_replace key inside the variable's name",
     "heat/edge.yaml",
     "TINSEL_CLUSTER_SECRET=$secret\n                params:\n                  $secret:",
     "TINSEL_CLUSTER_SECRET=SECRET\n                params:\n                  SECRET:",
     "cloud-config"),
    ("edge origins written without quotes", "heat/edge.yaml",
     """template: '"<%url%>"'""", "template: '<%url%>'", "cloud-config"),
    ("install script that leaves the site behind", "heat/tinsel-install.sh",
     'cp -R "$from/tinsel" "$from/site" "$prefix.new/"', 'cp -R "$from/tinsel" "$prefix.new/"',
     "install-script"),
    ("install script that skips the checksum", "heat/tinsel-install.sh",
     'if [ -n "$sum" ]; then', 'if false; then', "install-script"),
    ("systemd value misspelt (ProtectSystem=strikt)", "systemd/tinsel.service",
     "ProtectSystem=strict", "ProtectSystem=strikt", "systemd"),
    ("systemd key misspelt (Restrat=)", "systemd/tinsel.service",
     "Restart=on-failure", "Restrat=on-failure", "systemd"),
    ("systemd unit without its sandbox (CapabilityBoundingSet= to SystemCallErrorNumber=)",
     "systemd/tinsel.service",
     re.compile(r"(?ms)^CapabilityBoundingSet=$.*?^SystemCallErrorNumber=EPERM\n"), "",
     "systemd-security"),
    ("Containerfile apt-get without --no-install-recommends", "Containerfile",
     "apt-get install -y --no-install-recommends libopus0", "apt-get install -y libopus0",
     "containerfile"),
]


def main():
    deploy = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    counts = {"OK": 0, "FAIL": 0, "SKIP": 0}

    def say(status, text):
        counts[status] += 1
        print(f"{status:<4} {text}", flush=True)

    for shown, what, check, needs in CHECKS.values():
        reason = skip_reason(needs)
        if reason:
            say("SKIP", f"{shown} ({what}): {reason}")
            continue
        problems = check(deploy)
        if problems:
            say("FAIL", f"{shown} ({what})")
            for problem in problems:
                print(f"       {problem}")
        else:
            say("OK", f"{shown} ({what})")

    with tempfile.TemporaryDirectory() as tmp:
        for description, file, text, replacement, check_id in BROKEN:
            _, what, check, needs = CHECKS[check_id]
            reason = skip_reason(needs)
            if reason:
                say("SKIP", f"broken copy: {description}: {reason}")
                continue
            copy = os.path.join(tmp, "deploy")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(deploy, copy, ignore=shutil.ignore_patterns("__pycache__"))
            path = os.path.join(copy, file)
            with open(path) as f:
                original = f.read()
            found = (len(text.findall(original)) if isinstance(text, re.Pattern)
                     else original.count(text))
            if found != 1:
                say("FAIL", f"broken copy: {description}: the text to break is not in "
                            f"deploy/{file} exactly once (update BROKEN)")
                continue
            with open(path, "w") as f:
                f.write(text.sub(replacement, original) if isinstance(text, re.Pattern)
                        else original.replace(text, replacement))
            problems = check(copy)
            if problems:
                first = problems[0].replace(copy + os.sep, "")
                say("OK", f"rejected: {description} ({what}): {first[:160]}")
            else:
                say("FAIL", f"not rejected: {description} ({what} passed it)")

    print(f"validate-deploy: {counts['OK']} passed, {counts['FAIL']} failed, "
          f"{counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
