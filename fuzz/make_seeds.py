#!/usr/bin/env python3
"""Writes the seed corpus of the `load_resolve` fuzz target: the examples
(the rag-stack manifest with its registry files, NUL-separated as the target
reads them), every manifest embedded in the tests, and inputs past column
65,535. Run from the repository root: `python3 fuzz/make_seeds.py`."""
import glob
import hashlib
import os
import re

OUT = "fuzz/corpus/load_resolve"
seeds = []
rs = "examples/rag-stack/"
parts = [open(rs + "hsm.toml").read()]
for f in [
    "services/embedder.toml",
    "services/postgres.toml",
    "library_groups/vector-client.toml",
    "service_groups/vector-db.toml",
    "libraries/my-utils.toml",
]:
    parts.append(open(rs + "hsm-registry/" + f).read())
parts.append(open(rs + "config/postgres.env").read())
seeds.append("\0".join(parts))
seeds.append(open("examples/build-script/hsm.toml").read())
table = re.compile(r"^\[(services|libraries|registry|project)", re.M)
for f in sorted(glob.glob("tests/*.rs")):
    src = open(f).read()
    for m in re.finditer(r'r#"(.*?)"#', src, re.S):
        if table.search(m.group(1)):
            seeds.append(m.group(1))
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', src):
        t = m.group(1)
        if "\\n[" in t or table.match(t):
            try:
                t = bytes(t, "utf-8").decode("unicode_escape")
            except UnicodeDecodeError:
                continue
            seeds.append(t)
seeds.append("x" * 65536 + "\n")
seeds.append('[project]\nname = "' + "x" * 70000 + '"\nservices-dir = 1\n')
seeds.append(
    '[services]\nstandalone = ["s"]\n[registry.services.s]\n'
    'env = { "X\\nLD_PRELOAD" = "/tmp/evil.so", "A=B" = "x", "" = "y" }\n'
    '[registry.services.s.sources.prod]\ntype = "local"\npath = ""\n'
)
# Crashes the fuzzer found, minimal (pep508_rs panicked on a name that ends
# in a separator before more text).
for dep in ["foo- >=1", "x[a-]", "no-such-\u0249ckage>=1"]:
    seeds.append(
        '[services]\nstandalone = ["s"]\n[registry.services.s]\n'
        'dependencies = ["' + dep + '"]\n'
        '[registry.services.s.sources.prod]\ntype = "local"\npath = "s"\n'
        '[registry.services.s.deployment-profiles.default]\nruntime = "uv"\n'
    )
os.makedirs(OUT, exist_ok=True)
for s in seeds:
    b = s.encode("utf-8", "surrogatepass")
    name = hashlib.sha1(b).hexdigest()[:16]
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(b)
