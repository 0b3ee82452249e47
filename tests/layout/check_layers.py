#!/usr/bin/env python3
"""check_layers.py - the runtime's layout rules, checked from the code.

runtime/src/<layer>/ holds one layer; a layer may use only itself and the
layers below it:

    app -> events -> outbound -> http -> store -> core -> libraries

Checked here, from each file's #include lines and from which file defines
each zc_ function that another file calls:
  - no file calls a function defined in a higher layer, or includes a
    higher layer's header;
  - no cycle between files (a strongly connected component of more than
    one file in the call graph);
  - only the listed files include a library's header (libmicrohttpd in the
    server side, libcurl in its loader, SQLite and libpq in their backends);
  - no runtime file above MAX_LINES lines, and each opens with a comment
    that names it ("/*\n * name.c - its concern").

Prints what it found and "layout: N passed, N failed"; exit 1 on a failure.
Run: python3 tests/layout/check_layers.py [-v]
"""
import collections
import glob
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.path.join(ROOT, "runtime", "src")
LAYERS = ["core", "store", "http", "outbound", "events", "app"]
MAX_LINES = 800
# library header -> the files allowed to include it (relative to SRC)
LIBRARY_HEADERS = {
    # loops.c: each loop thread drives its daemon (MHD_run, MHD_get_timeout,
    # MHD_add_connection on the loop's own thread), kept out of server.c
    "microhttpd.h": {"http/server.c", "http/acceptor.c", "http/request.c",
                     "http/loops.c"},
    "curl/curl.h": {"outbound/curl.c"},
    "sqlite3.h": {"store/sqlite.c"},
    "libpq-fe.h": {"store/postgres.c"},
    "zlib.h": {"outbound/export.c"},
}

STRIP = re.compile(r"""/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])+'|^\s*#[^\n]*""",
                   re.S | re.M)


def layer_of(rel):
    top = rel.split("/", 1)[0]
    return LAYERS.index(top) if top in LAYERS else None


def main():
    verbose = "-v" in sys.argv
    files = sorted(glob.glob(os.path.join(SRC, "*", "*.[ch]")))
    rel = {f: os.path.relpath(f, SRC) for f in files}
    text = {f: open(f, encoding="utf-8").read() for f in files}
    code = {f: STRIP.sub(" ", t) for f, t in text.items()}
    problems = collections.defaultdict(list)
    checks = []

    # where each function is defined (a definition starts a line)
    defs = {}
    for f in files:
        if not f.endswith(".c"):
            continue
        for m in re.finditer(r"^(zc_\w+)\s*\(", code[f], re.M):
            defs.setdefault(m.group(1), f)
    edges = collections.defaultdict(set)
    why = collections.defaultdict(set)
    for f in files:
        if not f.endswith(".c"):
            continue
        for m in re.finditer(r"\b(zc_\w+)\s*\(", code[f]):
            d = defs.get(m.group(1))
            if d is not None and d != f:
                edges[f].add(d)
                why[(f, d)].add(m.group(1))

    # 1. calls and includes go down (or stay in the layer)
    name = "calls and includes run down the layers"
    checks.append(name)
    for f in files:
        lf = layer_of(rel[f])
        for d in edges[f]:
            if layer_of(rel[d]) > lf:
                problems[name].append("%s calls %s in %s" % (
                    rel[f], ", ".join(sorted(why[(f, d)])), rel[d]))
        for m in re.finditer(r'^\s*#\s*include\s+"([^"]+)"', text[f], re.M):
            inc = os.path.normpath(os.path.join(os.path.dirname(rel[f]), m.group(1)))
            li = layer_of(inc)
            if li is not None and li > lf:
                problems[name].append("%s includes %s" % (rel[f], inc))

    # 2. no cycles between files (Tarjan's strongly connected components)
    name = "no cycle between files"
    checks.append(name)
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    for f in files:
        if f.endswith(".c") and f not in index:
            visit(f)
    for comp in sccs:
        if len(comp) > 1:
            detail = []
            for a in comp:
                for b in comp:
                    if b in edges[a]:
                        detail.append("%s -> %s (%s)" % (
                            rel[a], rel[b], ", ".join(sorted(why[(a, b)])[:4])))
            problems[name].append("cycle: " + "; ".join(sorted(detail)))

    # 3. library headers only where they belong
    name = "library headers only in their files"
    checks.append(name)
    for f in files:
        for m in re.finditer(r"^\s*#\s*include\s+<([^>]+)>", text[f], re.M):
            allowed = LIBRARY_HEADERS.get(m.group(1))
            if allowed is not None and rel[f] not in allowed:
                problems[name].append("%s includes <%s> (only %s may)" % (
                    rel[f], m.group(1), ", ".join(sorted(allowed))))

    # 4. file size and the opening comment
    name = "files at most %d lines, each opening with its concern" % MAX_LINES
    checks.append(name)
    for f in files:
        n = text[f].count("\n")
        if n > MAX_LINES:
            problems[name].append("%s has %d lines" % (rel[f], n))
        base = os.path.basename(f)
        if not re.match(r"/\*\n \* %s - \S" % re.escape(base), text[f]):
            problems[name].append("%s does not open with \"/*\\n * %s - ...\"" % (rel[f], base))

    if verbose:
        for f in files:
            if f.endswith(".c"):
                print("%-24s %4d lines -> %s" % (rel[f], text[f].count("\n"),
                      ", ".join(sorted(rel[d] for d in edges[f])) or "-"))
    passed = failed = 0
    for c in checks:
        if problems[c]:
            failed += 1
            print("FAIL %s" % c)
            for p in problems[c]:
                print("     " + p)
        else:
            passed += 1
            print("ok   %s" % c)
    biggest = max(files, key=lambda f: text[f].count("\n"))
    print("layout: %d files in %d layers; largest %s (%d lines)" % (
        len(files), len(LAYERS), rel[biggest], text[biggest].count("\n")))
    print("layout: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
