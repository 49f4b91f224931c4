#!/usr/bin/env python3
"""Fails when modules of one crate import each other in a circle.

Between crates the compiler refuses circles; inside a crate it does not, so this check keeps the
floors of the server crate (http over domain, domain rooms over each other) one-way. It reads
`crate::…` and `super::…` paths in each module's source (test modules left out) and reports every
strongly connected group of modules, at two grains: top-level modules (`http`, `domain`, `app`,
…) and the files inside `domain/` and `http/`.

Usage: scripts/check-module-cycles.py [CRATE_SRC …]   (default: every crate under host/)
"""
import os
import re
import sys

GROUPED = ("domain", "http")  # modules whose files are rooms of their own


def module_name(path, src):
    rel = os.path.relpath(path, src)[:-3]
    if rel.endswith("/mod"):
        rel = rel[: -len("/mod")]
    return rel.replace("/", "::")


def imports(text, name):
    """Modules a module's source names: `crate::a[::b]` and, inside a folder, `super::b`."""
    text = text.split("#[cfg(test)]\nmod tests", 1)[0]
    text = re.sub(r"//[^\n]*", "", text)
    found = set()
    for head, sub in re.findall(r"crate::([a-z_]+)(?:::([a-z_]+))?", text):
        found.add(f"{head}::{sub}" if sub and head in GROUPED else head)
    # `use crate::{a::…, b::{…}}`: the top-level names of the group.
    for body in re.findall(r"use crate::\{(.*?)\};", text, re.S):
        depth = 0
        for token in re.findall(r"[{}]|[a-z_]+(?=::)", body):
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
            elif depth == 0:
                found.add(token)
    if "::" in name:
        parent = name.split("::")[0]
        for sub in re.findall(r"super::([a-z_]+)", text):
            found.add(f"{parent}::{sub}")
        for body in re.findall(r"use super::\{(.*?)\};", text, re.S):
            depth = 0
            for token in re.findall(r"[{}]|[a-z_]+(?=::|\s*[,}]|\s*$)", body):
                if token == "{":
                    depth += 1
                elif token == "}":
                    depth -= 1
                elif depth == 0 and token != "self":
                    found.add(f"{parent}::{token}")
    return found


def cycles(graph):
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def check(src):
    modules = {}
    for folder, _, files in os.walk(src):
        for file in files:
            if file.endswith(".rs"):
                path = os.path.join(folder, file)
                name = module_name(path, src)
                if name not in ("lib", "main") and not name.startswith("bin::"):
                    with open(path, encoding="utf-8") as f:
                        modules[name] = imports(f.read(), name)

    def known(dep):
        if dep in modules:
            return dep
        head = dep.split("::")[0]
        return head if head in modules else None

    failed = False
    for grain in ("top-level modules", "files of domain/ and http/"):
        graph = {}
        for name, deps in modules.items():
            for dep in filter(None, map(known, deps)):
                a, b = (name.split("::")[0], dep.split("::")[0]) if grain[0] == "t" else (name, dep)
                if a != b:
                    graph.setdefault(a, set()).add(b)
        for group in cycles(graph):
            failed = True
            print(f"{src}: import circle among {grain}:")
            for a in group:
                print(f"    {a} -> {', '.join(sorted(graph[a] & set(group)))}")
    return failed


def main():
    root = os.path.join(os.path.dirname(__file__), "..")
    crates = sys.argv[1:] or sorted(
        os.path.join(root, "host", c, "src") for c in os.listdir(os.path.join(root, "host"))
    )
    failed = [src for src in crates if check(src)]
    if failed:
        sys.exit(1)
    print(f"no import circles in {len(crates)} crates")


if __name__ == "__main__":
    main()
