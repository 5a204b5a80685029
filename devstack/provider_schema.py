"""The google provider's published schema, as carried by its generated bindings.

    .venv/bin/python -m devstack.provider_schema      # make test runs it (target provider-schema)

Fetches ``@cdktf/provider-google`` (pinned below, checked against its registry integrity) with
npm's own client (``npm pack``), reads the jsii assembly in it (every resource's and data source's
arguments and nested blocks, generated from the provider's schema) and writes a compact copy to
``.local/provider-schema/google-<provider version>.json``:
``{"resource"|"data": {type: {"arguments": [...], "blocks": {name: {...}}}}}``.
``tests/unit/test_provider_schema.py`` checks every argument and block of ``infra/*.tf`` against it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

PACKAGE = "@cdktf/provider-google"
PACKAGE_VERSION = "14.36.0"
PROVIDER_VERSION = "6.37.0"  # the google provider these bindings were generated from
INTEGRITY = "sha512-LMmbgPRNhX30+JlEpiZQI/fIFSA/q168QjavHmZeucqn0ZsTgmfqFhlVgqKW2SVCh9jXBzKFQ3v7rggCPki4Cg=="  # noqa: E501 - npm view @cdktf/provider-google@14.36.0 dist.integrity
CACHE = Path(__file__).resolve().parent.parent / ".local" / "provider-schema"
SCHEMA = CACHE / f"google-{PROVIDER_VERSION}.json"

_LINK = re.compile(
    r"registry\.terraform\.io/providers/hashicorp/google/[^/]+/docs/(resources|data-sources)/"
    r"[a-z0-9_]+ (google_[a-z0-9_]+)\}"
)
_ANCHOR = re.compile(r"/docs/(?:resources|data-sources)/[a-z0-9_]+#([a-z0-9_]+) ")


def fetch() -> Path:
    """The package's tarball, fetched once with npm and checked against the pinned integrity."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"cdktf-provider-google-{PACKAGE_VERSION}.tgz"
    if not tarball.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed to fetch the provider schema")
        subprocess.run(
            [npm, "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--silent"],
            cwd=CACHE,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != INTEGRITY:
        tarball.unlink()
        raise SystemExit(f"{tarball.name} does not match the pinned integrity")
    return tarball


def extract(tarball: Path) -> dict[str, Any]:
    """Every google resource and data source: its arguments and nested blocks."""
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/.jsii")
        assert member is not None
        types: dict[str, Any] = json.load(member)["types"]
    schema: dict[str, dict[str, Any]] = {"resource": {}, "data": {}}
    for fqn, kind in types.items():
        match = _LINK.search(kind.get("docs", {}).get("summary", ""))
        config = types.get(f"{fqn}Config")
        if kind["kind"] != "class" or match is None or config is None:
            continue
        section = "resource" if match.group(1) == "resources" else "data"
        schema[section][match.group(2)] = _block(config, types, set())
    return schema


def _block(struct: dict[str, Any], types: dict[str, Any], seen: set[str]) -> dict[str, Any]:
    arguments: list[str] = []
    blocks: dict[str, Any] = {}
    for prop in struct.get("properties", []):
        name = _snake(prop)
        nested = _struct_of(prop["type"], types)
        if nested is not None and nested not in seen:
            blocks[name] = _block(types[nested], types, seen | {nested})
        else:
            arguments.append(name)
    return {"arguments": sorted(arguments), "blocks": dict(sorted(blocks.items()))}


def _struct_of(type_ref: dict[str, Any], types: dict[str, Any]) -> str | None:
    """The nested block's struct a property's type names (alone, in a list, or in a union)."""
    if "fqn" in type_ref:
        kind = types.get(type_ref["fqn"])
        is_struct = kind is not None and kind["kind"] == "interface" and kind.get("datatype")
        return str(type_ref["fqn"]) if is_struct else None
    if "collection" in type_ref and type_ref["collection"]["kind"] == "array":
        return _struct_of(type_ref["collection"]["elementtype"], types)
    if "union" in type_ref:
        for member in type_ref["union"]["types"]:
            found = _struct_of(member, types)
            if found is not None:
                return found
    return None


def _snake(prop: dict[str, Any]) -> str:
    anchor = _ANCHOR.search(prop.get("docs", {}).get("remarks", ""))
    if anchor is not None:
        return anchor.group(1)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", prop["name"]).lower()


def main() -> None:
    if SCHEMA.exists():
        print(f"{SCHEMA.relative_to(CACHE.parent.parent)} (cached)")
        return
    schema = extract(fetch())
    SCHEMA.write_text(json.dumps(schema, sort_keys=True))
    print(f"{SCHEMA.relative_to(CACHE.parent.parent)}: {len(schema['resource'])} resources")


if __name__ == "__main__":
    main()
