"""Fails if a dependency that users compile declares a newer rust-version than ours.

Reads `cargo metadata --all-features` on stdin and walks the normal and build
dependencies (not dev-dependencies) of the workspace's crates, on every platform.
"""
import json
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
ours = set(meta["workspace_members"])
msrv = max(version(packages[i]["rust_version"]) for i in ours if packages[i]["rust_version"])
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}

seen, todo = set(), list(ours)
while todo:
    for dep in nodes[todo.pop()]["deps"]:
        used_by_users = any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"])
        if used_by_users and dep["pkg"] not in seen:
            seen.add(dep["pkg"])
            todo.append(dep["pkg"])

ours_text = ".".join(map(str, msrv[:2]))
late = []
for pid in sorted(seen):
    package = packages[pid]
    declared = package["rust_version"]
    if declared and version(declared) > msrv:
        late.append("%s %s needs Rust %s" % (package["name"], package["version"], declared))
if late:
    sys.exit("dependencies newer than our rust-version %s:\n  %s" % (ours_text, "\n  ".join(late)))
print("%d dependencies support Rust %s" % (len(seen), ours_text))
