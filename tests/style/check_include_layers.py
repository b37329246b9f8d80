#!/usr/bin/env python3
"""Include layers: a file under src/ may include only headers of its own library or of a library
its library links, directly or through others. The graph is the build's own: CMake writes each
library's sources and link libraries to the file given as the first argument (tests/style). A
header belongs to the library that compiles its .cpp twin; the few headers without one are in
HEADER_OWNERS below. Only direct #include "..." lines of files under src/ are read.

usage: check_include_layers.py <graph file> <repository root>
"""
import os
import re
import sys

# Headers with no .cpp twin, and the library they belong to.
HEADER_OWNERS = {
    "common/object_hash.h": "mx_common",
    "model/objects.h": "mx_sinks",
    "model/sinks.h": "mx_sinks",
    "http/server_state.h": "mx_http",
    "sources/telemetry/scrape_health.h": "mx_telemetry",
}

# (including file, included header) pairs allowed across the graph, each with its reason.
# None today: a new one needs a reason written beside it.
EXCEPTIONS = set()

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def read_graph(path):
    targets = {}
    current = None
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition(" ")
            if key == "target":
                current = targets.setdefault(value, {"dir": "", "sources": [], "links": []})
            elif key == "dir":
                current["dir"] = value
            elif key == "sources":
                current["sources"] += [s for s in value.split(";") if s]
            elif key == "links":
                current["links"] += [s for s in value.split(";") if s]
    return targets


def closure(targets, name):
    seen, todo = set(), [name]
    while todo:
        t = todo.pop()
        if t in seen or t not in targets:
            continue
        seen.add(t)
        todo += targets[t]["links"]
    return seen


def main():
    graph, root = sys.argv[1], os.path.abspath(sys.argv[2])
    src = os.path.join(root, "src")
    targets = read_graph(graph)
    owner = dict(HEADER_OWNERS)
    for name, t in targets.items():
        for s in t["sources"]:
            path = os.path.normpath(os.path.join(t["dir"], s))
            if path.startswith(src + os.sep) and path.endswith(".cpp"):
                rel = os.path.relpath(path, src)
                owner[rel] = name
                twin = rel[:-4] + ".h"
                if os.path.exists(os.path.join(src, twin)):
                    owner.setdefault(twin, name)

    problems = []
    for dirpath, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith((".h", ".cpp")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            if rel not in owner:
                problems.append(f"{rel}: no library owns it (add it to a library, or to "
                                "HEADER_OWNERS in tests/style/check_include_layers.py)")
                continue
            allowed = closure(targets, owner[rel])
            with open(os.path.join(dirpath, f)) as text:
                includes = INCLUDE.findall(text.read())
            for inc in includes:
                if not os.path.exists(os.path.join(src, inc)):
                    continue  # generated or third-party
                lib = owner.get(inc)
                if lib is None or lib in allowed or (rel, inc) in EXCEPTIONS:
                    continue
                problems.append(f"src/{rel} ({owner[rel]}) includes {inc} of {lib}, which "
                                f"{owner[rel]} does not link")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) against the library graph (src/CMakeLists.txt)")
        return 1
    print(f"include layers: {len(owner)} files of {len(targets)} libraries checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
