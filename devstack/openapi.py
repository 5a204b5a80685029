"""Write every function's OpenAPI 3.1 description to docs/openapi/<function>.json.

    .venv/bin/python -m devstack.openapi

The descriptions are generated from the functions' route tables and pydantic models
(``push365.web.openapi``); ``tests/unit/test_openapi.py`` fails when a committed copy is stale.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from devstack.gateway import FUNCTIONS_DIR

DOCS_DIR = FUNCTIONS_DIR.parent / "docs" / "openapi"


def function_apis(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, Any]:
    """Function name -> its ``Api`` (routes and their operations), for every function with an
    HTTP API (not deliver, a CloudEvent function Pub/Sub pushes to)."""
    found: dict[str, Any] = {}
    for path in sorted(functions_dir.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"push365_openapi_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        api = getattr(module, "api", None)
        if api is not None:
            found[path.stem] = api
    return found


def descriptions(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, dict[str, Any]]:
    """Function name -> its description, for every function with an HTTP API."""
    return {name: api.openapi() for name, api in function_apis(functions_dir).items()}


def render(description: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, a final newline."""
    return json.dumps(description, indent=2, sort_keys=True) + "\n"


def main() -> None:
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for name, description in descriptions().items():
        (DOCS_DIR / f"{name}.json").write_text(render(description))
        print(f"docs/openapi/{name}.json")


if __name__ == "__main__":
    main()
