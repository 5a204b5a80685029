"""The Dynamics 365 solution: its unpacked sources and the zips the packer builds from them."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from dynamics import packer
from push365.notifications import dataverse as notifications
from push365.subscriptions import dataverse as subscriptions

SOURCE = packer.SOLUTION_DIR
VERSION = packer.project_version()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> packer.Built:
    return packer.build(tmp_path_factory.mktemp("dist"))


def _zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _customizations(built: packer.Built) -> ET.Element:
    return ET.fromstring(_zip(built.unmanaged)["customizations.xml"])


def test_make_solution_builds_both_zips_named_push365_with_the_project_version(
    built: packer.Built,
) -> None:
    version = VERSION.replace(".", "_")
    assert built.unmanaged.name == f"push365_{version}.zip"
    assert built.managed.name == f"push365_{version}_managed.zip"
    for path, managed in ((built.unmanaged, "0"), (built.managed, "1")):
        manifest = ET.fromstring(_zip(path)["solution.xml"])
        assert manifest.findtext("SolutionManifest/Version") == VERSION
        assert manifest.findtext("SolutionManifest/Managed") == managed
        assert manifest.findtext("SolutionManifest/UniqueName") == "push365"
        assert manifest.findtext("SolutionManifest/Publisher/CustomizationPrefix") == "p365"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", VERSION)


def test_every_xml_file_is_well_formed(built: packer.Built) -> None:
    sources = sorted(SOURCE.rglob("*.xml"))
    assert len(sources) >= 20
    for path in sources:
        ET.parse(path)  # raises on anything malformed
    for zipped in (built.unmanaged, built.managed):
        for name, content in _zip(zipped).items():
            if name.endswith(".xml"):
                assert content.startswith(b'<?xml version="1.0" encoding="utf-8"?>'), name
                ET.fromstring(content)


def test_root_files_and_content_types_are_as_the_format_requires(built: packer.Built) -> None:
    for zipped in (built.unmanaged, built.managed):
        files = _zip(zipped)
        assert set(packer.ROOT_FILES) <= set(files)
        assert next(iter(files)) == "[Content_Types].xml"
        root_files = {name for name in files if "/" not in name}
        assert root_files == set(packer.ROOT_FILES)
        types = ET.fromstring(files["[Content_Types].xml"])
        namespace = "{http://schemas.openxmlformats.org/package/2006/content-types}"
        assert types.tag == f"{namespace}Types"
        defaults = {
            element.get("Extension"): element.get("ContentType")
            for element in types.iter(f"{namespace}Default")
        }
        extensions = {Path(name).suffix.lstrip(".") for name in files}
        assert extensions <= set(defaults), "every file's extension has a content type"
        assert set(defaults.values()) == {"application/octet-stream"}
        customizations = ET.fromstring(files["customizations.xml"])
        assert customizations.tag == "ImportExportXml"
        assert ET.fromstring(files["solution.xml"]).tag == "ImportExportXml"


def test_web_resources_are_taken_from_web_at_build_time(built: packer.Built) -> None:
    committed = {
        path.relative_to(SOURCE / "WebResources").as_posix()
        for path in (SOURCE / "WebResources").rglob("*")
        if path.is_file()
    }
    assert all(name.endswith(".data.xml") for name in committed), "no content copied by hand"
    files = _zip(built.unmanaged)
    names = {
        (resource.findtext("Name") or ""): resource
        for resource in _customizations(built).iter("WebResource")
    }
    assert set(names) == {f"p365_/{path.name}" for path in packer.WEB_DIR.glob("*.*")}
    for name, resource in names.items():
        file_name = (resource.findtext("FileName") or "").lstrip("/")
        assert files[file_name] == (packer.WEB_DIR / name.removeprefix("p365_/")).read_bytes()
        kind = resource.findtext("WebResourceType")
        assert kind == ("1" if name.endswith(".html") else "3"), name


def test_every_referenced_web_resource_and_table_exists(built: packer.Built) -> None:
    files = _zip(built.unmanaged)
    packer.check(files)  # the packer's own check passes
    customizations = ET.fromstring(files["customizations.xml"])
    tables = {entity.findtext("Name") for entity in customizations.iter("Entity")}
    assert tables == {"p365_notification", "p365_subscription"}
    resources = {resource.findtext("Name") for resource in customizations.iter("WebResource")}
    urls = [sub.get("Url", "") for sub in customizations.iter("SubArea") if sub.get("Url")]
    assert "$webresource:p365_/subscribe.html" in urls
    assert "$webresource:p365_/report.html" in urls  # the delivery report
    assert all(url.removeprefix("$webresource:") in resources for url in urls)
    for view in customizations.iter("savedquery"):
        fetched = view.find("fetchxml/fetch/entity")
        assert fetched is not None
        assert fetched.get("name") in tables
        columns = {attribute.get("name") for attribute in fetched.iter("attribute")}
        entity = next(
            e for e in customizations.iter("Entity") if e.findtext("Name") == fetched.get("name")
        )
        declared = {attribute.findtext("LogicalName") for attribute in entity.iter("attribute")}
        assert columns <= declared
    for form in customizations.iter("systemform"):
        fields = {control.get("datafieldname") for control in form.iter("control")}
        assert fields <= {a.findtext("LogicalName") for a in customizations.iter("attribute")}


def test_a_broken_reference_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "solution"
    shutil.copytree(SOURCE, source)
    site_map = source / "AppModuleSiteMaps" / "p365_Push365" / "AppModuleSiteMap.xml"
    site_map.write_text(
        site_map.read_text("utf-8").replace("p365_/subscribe.html", "p365_/missing.html"), "utf-8"
    )
    with pytest.raises(packer.SolutionError, match="web resource"):
        packer.package(source, packer.WEB_DIR, VERSION)
    shutil.rmtree(source)
    shutil.copytree(SOURCE, source)
    (source / "WebResources" / "p365_" / "extra.js.data.xml").write_text(
        (source / "WebResources" / "p365_" / "config.js.data.xml")
        .read_text("utf-8")
        .replace("config.js", "extra.js"),
        "utf-8",
    )
    with pytest.raises(packer.SolutionError, match="no source file in web/"):
        packer.package(source, packer.WEB_DIR, VERSION)


def test_ids_and_bytes_are_stable_between_builds(built: packer.Built, tmp_path: Path) -> None:
    again = packer.build(tmp_path)
    assert again.unmanaged.read_bytes() == built.unmanaged.read_bytes()
    assert again.managed.read_bytes() == built.managed.read_bytes()
    guid = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
    source_ids = {
        match.lower() for path in SOURCE.rglob("*.xml") for match in guid.findall(path.read_bytes())
    }
    zip_ids = {
        match.lower()
        for content in _zip(built.unmanaged).values()
        for match in guid.findall(content)
        if content.startswith(b"<?xml")
    }
    assert zip_ids == source_ids, "every id in the zip is one committed in dynamics/solution"
    assert len(source_ids) >= 12


def _options(built: packer.Built, table: str, column: str) -> dict[int, str]:
    entity = next(e for e in _customizations(built).iter("Entity") if e.findtext("Name") == table)
    attribute = next(a for a in entity.iter("attribute") if a.findtext("LogicalName") == column)
    assert attribute.findtext("Type") == "picklist"
    return {
        int(option.get("value", "")): option.find("labels/label").get("description", "")  # type: ignore[union-attr]
        for option in attribute.iter("option")
    }


def test_urgency_choice_values_are_the_ones_send_reads(built: packer.Built) -> None:
    options = _options(built, "p365_notification", "p365_urgency")
    assert set(options) == set(notifications.URGENCY_VALUES)
    for value, label in options.items():
        assert label.lower().replace(" ", "-") == notifications.URGENCY_VALUES[value]


def test_the_columns_the_functions_read_exist_with_their_types(built: packer.Built) -> None:
    customizations = _customizations(built)

    def columns(table: str) -> dict[str, str]:
        entity = next(e for e in customizations.iter("Entity") if e.findtext("Name") == table)
        return {
            a.findtext("LogicalName") or "": a.findtext("Type") or ""
            for a in entity.iter("attribute")
        }

    subscription = columns(subscriptions.TABLE)
    assert subscription[subscriptions.INSTANCE_ID] == "nvarchar"
    assert subscription[subscriptions.FOOTPRINT] == "nvarchar"
    assert subscription[subscriptions.TOKEN_KIND] == "nvarchar"
    notification = columns(notifications.TABLE)
    assert notification == notification | {
        "p365_title": "nvarchar",
        "p365_body": "ntext",
        "p365_link": "nvarchar",
        "p365_recipients": "ntext",
        "p365_urgency": "picklist",
        "p365_ttlseconds": "int",
    }
    ttl = next(
        a
        for a in customizations.iter("attribute")
        if a.findtext("LogicalName") == "p365_ttlseconds"
    )
    assert int(ttl.findtext("MaxValue") or 0) == 28 * 24 * 3600


def test_the_role_lets_users_keep_their_own_subscriptions_only(built: packer.Built) -> None:
    role = next(_customizations(built).iterfind("Roles/Role"))
    privileges = {p.get("name"): p.get("level") for p in role.iter("RolePrivilege")}
    for verb in ("Create", "Read", "Write", "Delete"):
        assert privileges[f"prv{verb}p365_subscription"] == "Basic"  # the user's own rows
    assert not any("p365_notification" in name for name in privileges if name)


def test_environment_variables_for_the_base_url_and_firebase_config(built: packer.Built) -> None:
    files = _zip(built.unmanaged)
    kinds = {
        name.split("/")[1]: ET.fromstring(content).findtext("type")
        for name, content in files.items()
        if name.startswith("environmentvariabledefinitions/")
    }
    assert kinds == {"p365_BaseUrl": "100000000", "p365_FirebaseConfig": "100000003"}
