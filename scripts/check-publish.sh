#!/usr/bin/env bash
# Check that the library crates (scache-core, scache-proto) are ready for
# crates.io, without publishing anything.
#
# Usage: scripts/check-publish.sh [--skip-doc] [--skip-publish]
#
# Steps:
#   1. metadata: every field crates.io needs or shows (description, license,
#      repository, rust-version, keywords, categories) is set, keywords follow
#      crates.io's rules, and every path dependency also has a version;
#      missing optional fields (readme, license files) are warned about.
#   2. cargo publish --dry-run for both crates at once (-p scache-core -p
#      scache-proto). Cargo (1.90 and later) packages both, and verifies
#      scache-proto against the packaged scache-core through a temporary
#      local registry, so scache-core need not be on crates.io yet. The
#      registry index is read from crates.io (network needed). Uncommitted
#      changes are allowed (--allow-dirty): nothing is uploaded.
#   3. examples of both crates build.
#   4. cargo doc --no-deps for the whole workspace with RUSTDOCFLAGS=-Dwarnings,
#      and the documentation tests of both crates.
#
# Honours CARGO_TARGET_DIR. Exit status: 0 when every check passed, 1 when a
# check failed, 2 on a usage error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

crates=(scache-core scache-proto)
do_doc=1
do_publish=1
while [ $# -gt 0 ]; do
    case $1 in
    --skip-doc) do_doc=; shift ;;
    --skip-publish) do_publish=; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) printf 'check-publish: unknown argument: %s (try --help)\n' "$1" >&2; exit 2 ;;
    esac
done

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
failed=()
step() { printf '\n=== check-publish: %s\n' "$*"; }
run() {
    printf '+ %s\n' "$*"
    if ! "$@"; then
        failed+=("$*")
        return 1
    fi
}

step "metadata of ${crates[*]}"
metadata_check() {
    local json
    json=$(mktemp)
    trap 'rm -f "$json"' RETURN
    cargo metadata --no-deps --format-version 1 >"$json" || return 1
    python3 - "$json" "${crates[@]}" <<'PY'
import json, os, re, sys

path, wanted = sys.argv[1], sys.argv[2:]
required = ["description", "license", "repository", "rust_version", "keywords", "categories"]
with open(path) as f:
    meta = json.load(f)
by_name = {p["name"]: p for p in meta["packages"]}
problems = 0


def field_name(field):
    return field.replace("_", "-")


for name in wanted:
    p = by_name.get(name)
    if p is None:
        print(f"error: {name}: not a workspace member")
        problems += 1
        continue
    errors = []
    for field in required:
        if field == "license" and not p.get("license") and p.get("license_file"):
            continue
        if not p.get(field):
            errors.append(f"missing {field_name(field)}")
    if p.get("publish") == []:
        errors.append("publish = false")
    keywords = p.get("keywords") or []
    if len(keywords) > 5:
        errors.append(f"{len(keywords)} keywords (crates.io allows 5)")
    for k in keywords:
        if len(k) > 20 or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*", k):
            errors.append(f"keyword {k!r} is not valid on crates.io")
    if len(p.get("categories") or []) > 5:
        errors.append("more than 5 categories (crates.io allows 5)")
    for d in p["dependencies"]:
        if d.get("path") and d["kind"] != "dev" and d["req"] == "*":
            errors.append(f"path dependency {d['name']} has no version")
    for e in errors:
        print(f"error: {name}: {e}")
    problems += len(errors)

    crate_dir = os.path.dirname(p["manifest_path"])
    root = os.path.dirname(crate_dir)
    if not p.get("readme"):
        print(f"warning: {name}: no readme (the crates.io page will be empty)")
    licenses = [f for d in (crate_dir, root) for f in os.listdir(d)
                if f.upper().startswith(("LICENSE", "COPYING"))]
    if not licenses:
        print(f"warning: {name}: no LICENSE file in the crate or the workspace root"
              f" (license = {p.get('license')!r})")
    if not errors:
        shown = ", ".join(f"{field_name(f)}={p.get(f)!r}" for f in required)
        print(f"ok: {name} {p['version']}: {shown}")
sys.exit(1 if problems else 0)
PY
}
if ! metadata_check; then
    failed+=("metadata")
fi

pkg_args=()
for c in "${crates[@]}"; do pkg_args+=(-p "$c"); done

if [ -n "$do_publish" ]; then
    step "cargo publish --dry-run"
    run cargo publish --dry-run --allow-dirty "${pkg_args[@]}" || true
fi

step "examples"
run cargo build --examples "${pkg_args[@]}" || true

if [ -n "$do_doc" ]; then
    step "cargo doc --no-deps (warnings are errors)"
    RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" run cargo doc --no-deps --workspace || true
    step "documentation tests"
    run cargo test --doc "${pkg_args[@]}" || true
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
    printf 'check-publish: FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "check-publish: all checks passed for ${crates[*]}"
