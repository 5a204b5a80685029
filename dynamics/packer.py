"""Build the Push365 solution zips (unmanaged and managed) from ``dynamics/solution`` and ``web/``.

``dynamics/solution`` is the unpacked layout SolutionPackager (``pac solution unpack``) writes:
``Other/Solution.xml``, ``Other/Customizations.xml``, ``Entities/<table>/Entity.xml`` with its
``FormXml`` and ``SavedQueries``, ``Roles/``, ``WebResources/`` (only the ``.data.xml``
metadata: each web resource's content is the file of the same name in ``web/``, taken at build
time), ``AppModules/``, ``AppModuleSiteMaps/`` and ``environmentvariabledefinitions/``.

Packing does what SolutionPackager does: the importer reads ``customizations.xml`` only, so the
tables, roles, web resources, app and site map are merged into it; ``solution.xml`` gets the
project's version and ``Managed``. The zip is deterministic (sorted entries, fixed timestamps): the
same sources build the same bytes, so ids and files never drift between builds.

    python -m dynamics.packer [--out dist]
"""

from __future__ import annotations

import argparse
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_DIR = ROOT / "dynamics" / "solution"
WEB_DIR = ROOT / "web"
PYPROJECT = ROOT / "shared" / "pyproject.toml"
UNIQUE_NAME = "push365"
PREFIX = "p365"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CONTENT_TYPES = "[Content_Types].xml"
ROOT_FILES = (CONTENT_TYPES, "customizations.xml", "solution.xml")
"""What a solution zip holds at its root (``[Content_Types].xml`` lists the content types of
every file it holds; ``solution.xml`` is the manifest; ``customizations.xml`` the components)."""
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'

ET.register_namespace("xsi", XSI)


class SolutionError(Exception):
    """The solution's sources are inconsistent (a reference to something that is not there)."""


@dataclass(frozen=True)
class Built:
    """The two zips a build writes."""

    unmanaged: Path
    managed: Path


def project_version(pyproject: Path = PYPROJECT) -> str:
    """The project's version as Dataverse wants it: four numbers (``0.1.0`` -> ``0.1.0.0``)."""
    version = str(tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"])
    parts = version.split(".")
    if not 1 <= len(parts) <= 4 or not all(part.isdigit() for part in parts):
        raise SolutionError("the project version must be numbers separated by dots")
    return ".".join(parts + ["0"] * (4 - len(parts)))


def zip_name(version: str, managed: bool) -> str:
    """``push365_0_1_0_0.zip`` / ``push365_0_1_0_0_managed.zip``, as Dataverse names exports."""
    return f"{UNIQUE_NAME}_{version.replace('.', '_')}{'_managed' if managed else ''}.zip"


def _parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _xml(element: ET.Element) -> bytes:
    ET.indent(element, space="  ")
    return _XML_DECLARATION + ET.tostring(element, encoding="unicode").encode("utf-8") + b"\n"


def _section(customizations: ET.Element, tag: str) -> ET.Element:
    section = customizations.find(tag)
    if section is None:
        raise SolutionError(f"Other/Customizations.xml has no <{tag}>")
    return section


def _entity(folder: Path) -> ET.Element:
    entity = _parse(folder / "Entity.xml")
    position = list(entity).index(_required(entity, "EntityInfo")) + 1
    forms = sorted((folder / "FormXml").glob("*/*.xml"))
    if forms:
        form_xml = ET.Element("FormXml")
        for form_type in sorted({form.parent.name for form in forms}):
            group = ET.SubElement(form_xml, "forms", {"type": form_type})
            for form in forms:
                if form.parent.name == form_type:
                    group.extend(_parse(form).findall("systemform"))
        entity.insert(position, form_xml)
        position += 1
    views = sorted((folder / "SavedQueries").glob("*.xml"))
    if views:
        saved = ET.Element("SavedQueries")
        group = ET.SubElement(saved, "savedqueries")
        for view in views:
            group.extend(_parse(view).findall("savedquery"))
        entity.insert(position, saved)
    return entity


def _required(element: ET.Element, path: str) -> ET.Element:
    found = element.find(path)
    if found is None:
        raise SolutionError(f"<{element.tag}> has no <{path}>")
    return found


def _text(element: ET.Element, path: str) -> str:
    return (_required(element, path).text or "").strip()


def _web_resource_file(resource: ET.Element, web_dir: Path) -> tuple[str, bytes]:
    name = _text(resource, "Name")
    file_name = _text(resource, "FileName")
    if not name.startswith(f"{PREFIX}_/") or file_name != f"/WebResources/{name}":
        raise SolutionError(f"web resource {name}: its FileName must be /WebResources/<Name>")
    source = web_dir / PurePosixPath(name).name
    if not source.is_file():
        raise SolutionError(f"web resource {name} has no source file in web/")
    return file_name.lstrip("/"), source.read_bytes()


def package(
    solution_dir: Path = SOLUTION_DIR,
    web_dir: Path = WEB_DIR,
    version: str = "",
    managed: bool = False,
) -> dict[str, bytes]:
    """Every file of the solution zip, by its name in the zip."""
    version = version or project_version()
    files: dict[str, bytes] = {}

    manifest = _parse(solution_dir / "Other" / "Solution.xml")
    _required(manifest, "SolutionManifest/Version").text = version
    _required(manifest, "SolutionManifest/Managed").text = "1" if managed else "0"
    files["solution.xml"] = _xml(manifest)

    customizations = _parse(solution_dir / "Other" / "Customizations.xml")
    entities = _section(customizations, "Entities")
    for folder in sorted(path for path in (solution_dir / "Entities").iterdir() if path.is_dir()):
        entities.append(_entity(folder))
    roles = _section(customizations, "Roles")
    for role in sorted((solution_dir / "Roles").glob("*.xml")):
        roles.append(_parse(role))
    web_resources = _section(customizations, "WebResources")
    for data in sorted((solution_dir / "WebResources").rglob("*.data.xml")):
        resource = _parse(data)
        name, content = _web_resource_file(resource, web_dir)
        files[name] = content
        web_resources.append(resource)
    for tag, directory, file_name in (
        ("AppModuleSiteMaps", "AppModuleSiteMaps", "AppModuleSiteMap.xml"),
        ("AppModules", "AppModules", "AppModule.xml"),
    ):
        section = _section(customizations, tag)
        for path in sorted((solution_dir / directory).glob(f"*/{file_name}")):
            section.append(_parse(path))
    files["customizations.xml"] = _xml(customizations)

    for definition in sorted(
        (solution_dir / "environmentvariabledefinitions").glob(
            "*/environmentvariabledefinition.xml"
        )
    ):
        name = f"environmentvariabledefinitions/{definition.parent.name}/{definition.name}"
        files[name] = _xml(_parse(definition))

    files[CONTENT_TYPES] = content_types(files)
    check(files)
    return files


def content_types(names: Iterable[str]) -> bytes:
    """``[Content_Types].xml``: one ``Default`` per file extension in the zip."""
    extensions = sorted({PurePosixPath(name).suffix.lstrip(".") for name in names} | {"xml"})
    types = ET.Element(
        "Types", {"xmlns": "http://schemas.openxmlformats.org/package/2006/content-types"}
    )
    for extension in extensions:
        ET.SubElement(
            types, "Default", {"Extension": extension, "ContentType": "application/octet-stream"}
        )
    return _xml(types)


def check(files: dict[str, bytes]) -> None:
    """Every component the solution names is in it: root components, web resources the site map
    opens, tables the site map, app and role refer to, and the role the app maps to."""
    for name in ROOT_FILES:
        if name not in files:
            raise SolutionError(f"the zip has no {name}")
    manifest = ET.fromstring(files["solution.xml"])
    customizations = ET.fromstring(files["customizations.xml"])
    tables = {(entity.findtext("Name") or "").strip() for entity in customizations.iter("Entity")}
    resources = {
        (resource.findtext("Name") or "").strip(): (resource.findtext("FileName") or "").lstrip("/")
        for resource in customizations.iter("WebResource")
    }
    roles = {(role.get("id") or "").lower() for role in customizations.iterfind("Roles/Role")}
    site_maps = {
        (site_map.findtext("SiteMapUniqueName") or "").strip()
        for site_map in customizations.iter("AppModuleSiteMap")
    }
    apps = {(app.findtext("UniqueName") or "").strip() for app in customizations.iter("AppModule")}
    variables = {
        name.split("/")[1] for name in files if name.startswith("environmentvariabledefinitions/")
    }
    for name, file_name in resources.items():
        if file_name not in files:
            raise SolutionError(f"web resource {name} has no file in the zip")
    known = {"1": tables, "61": set(resources), "62": site_maps, "80": apps, "380": variables}
    declared: dict[str, set[str]] = {kind: set() for kind in known}
    for component in manifest.iter("RootComponent"):
        kind = component.get("type", "")
        if kind == "20":
            if (component.get("id") or "").lower() not in roles:
                raise SolutionError("a root component names a role the solution does not hold")
            continue
        name = component.get("schemaName", "")
        if kind not in known or name not in known[kind]:
            raise SolutionError(f"root component {kind}:{name} is not in the solution")
        declared[kind].add(name)
    for kind, names in known.items():
        if declared[kind] != names:
            raise SolutionError(f"components of type {kind} missing from RootComponents")
    for sub_area in customizations.iter("SubArea"):
        url = sub_area.get("Url", "")
        if url.startswith("$webresource:") and url.removeprefix("$webresource:") not in resources:
            raise SolutionError(f"the site map opens a web resource the solution lacks: {url}")
        if sub_area.get("Entity") and sub_area.get("Entity") not in tables:
            raise SolutionError("the site map names a table the solution lacks")
    for app in customizations.iter("AppModule"):
        for component in app.iter("AppModuleComponent"):
            name = component.get("schemaName", "")
            if name not in (site_maps if component.get("type") == "62" else tables):
                raise SolutionError(f"the app names a component the solution lacks: {name}")
        for role in app.iter("Role"):
            if (role.get("id") or "").lower() not in roles:
                raise SolutionError("the app maps to a role the solution does not hold")
    for privilege in customizations.iter("RolePrivilege"):
        name = privilege.get("name", "")
        table = name.split(PREFIX + "_", 1)
        if len(table) == 2 and f"{PREFIX}_{table[1]}" not in tables:
            raise SolutionError(f"a role grants a privilege on a table the solution lacks: {name}")


def write_zip(files: dict[str, bytes], path: Path) -> None:
    """A deterministic zip: entries in name order, ``[Content_Types].xml`` first, fixed times."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [CONTENT_TYPES, *sorted(name for name in files if name != CONTENT_TYPES)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])


def build(
    out_dir: Path,
    solution_dir: Path = SOLUTION_DIR,
    web_dir: Path = WEB_DIR,
    version: str = "",
) -> Built:
    """Write the unmanaged and the managed zip into ``out_dir``."""
    version = version or project_version()
    paths = {}
    for managed in (False, True):
        path = out_dir / zip_name(version, managed)
        write_zip(package(solution_dir, web_dir, version, managed), path)
        paths[managed] = path
    return Built(unmanaged=paths[False], managed=paths[True])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dynamics.packer",
        description="Build the Push365 Dynamics 365 solution: an unmanaged and a managed zip.",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (dist/)")
    args = parser.parse_args(argv)
    built = build(args.out)
    print(built.unmanaged)
    print(built.managed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
