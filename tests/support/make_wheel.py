#!/usr/bin/env python3
"""Build a tiny, valid, pure-Python wheel by hand (stdlib only, no network).

Used by the test-suite to create offline package indexes ("find-links"
directories) for uv / pip.

CLI:
    python3 make_wheel.py NAME VERSION OUT_DIR [--requires SPEC ...]
                          [--requires-python SPEC]
    # prints the path of the written wheel

    e.g. python3 make_wheel.py alpha 1.0.0 /tmp/wheels --requires "beta>=2"

Library:
    from make_wheel import make_wheel
    path = make_wheel("alpha", "1.0.0", "/tmp/wheels", requires=["beta>=2"])

The wheel contains:
    {module}/__init__.py                 (__version__ = "VERSION")
    {dist}-{VERSION}.dist-info/METADATA  (Metadata-Version 2.1, Requires-Dist lines)
    {dist}-{VERSION}.dist-info/WHEEL     (py3-none-any, Root-Is-Purelib: true)
    {dist}-{VERSION}.dist-info/RECORD    (sha256 of every file, RECORD itself ",,")

The output is byte-for-byte deterministic (fixed timestamps, stored entries,
fixed order), so the sha256 that uv.lock records for the wheel is the same every
time the wheel is regenerated with the same arguments.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import sys
import zipfile

__all__ = ["make_wheel", "normalize"]

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def normalize(name: str) -> str:
    """PEP 503 normalisation: lowercase, runs of -_. become a single '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_wheel(
    name: str,
    version: str,
    out_dir: str | os.PathLike = ".",
    requires: list[str] | tuple[str, ...] = (),
    requires_python: str | None = None,
) -> str:
    """Write ``{dist}-{version}-py3-none-any.whl`` into *out_dir*; return its path."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid distribution name: {name!r}")
    if not version or any(c.isspace() or c == "-" for c in version):
        raise ValueError(f"invalid version: {version!r}")

    dist = normalize(name).replace("-", "_")  # wheel filename / dist-info form
    module = dist  # importable package name
    dist_info = f"{dist}-{version}.dist-info"

    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: Test package {name}",
    ]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    metadata += [f"Requires-Dist: {req}" for req in requires]

    files: list[tuple[str, bytes]] = [
        (f"{module}/__init__.py", f'__version__ = "{version}"\n'.encode()),
        (f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()),
        (
            f"{dist_info}/WHEEL",
            (
                "Wheel-Version: 1.0\n"
                "Generator: make_wheel.py\n"
                "Root-Is-Purelib: true\n"
                "Tag: py3-none-any\n"
            ).encode(),
        ),
    ]
    record_path = f"{dist_info}/RECORD"
    record = io.StringIO()
    for path, data in files:
        record.write(f"{path},{_record_hash(data)},{len(data)}\n")
    record.write(f"{record_path},,\n")
    files.append((record_path, record.getvalue().encode()))

    os.makedirs(out_dir, exist_ok=True)
    wheel_path = os.path.join(os.fspath(out_dir), f"{dist}-{version}-py3-none-any.whl")
    tmp_path = wheel_path + ".tmp"
    with zipfile.ZipFile(tmp_path, "w", compression=zipfile.ZIP_STORED) as zf:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=_FIXED_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, data)
    os.replace(tmp_path, wheel_path)
    return wheel_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("version")
    parser.add_argument("out_dir")
    parser.add_argument(
        "--requires",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a Requires-Dist line (repeatable), e.g. 'beta>=2'",
    )
    parser.add_argument("--requires-python", default=None, metavar="SPEC")
    args = parser.parse_args(argv)
    try:
        path = make_wheel(
            args.name, args.version, args.out_dir, args.requires, args.requires_python
        )
    except ValueError as err:
        parser.error(str(err))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
