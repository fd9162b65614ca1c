"""What the Extensions Index and the package see of the extension: the root LICENSE and the license the
package ships, the Slicer 5.6 `.s4ext` description beside `SADM.json`, both agreeing with the root
CMakeLists' EXTENSION_* values, and contributors as "Name (Org)" entries."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
STAND_IN_SLICER = Path(__file__).resolve().parent / "cmake"
# The keys of a 5.6 description file (ExtensionsIndex branch 5.6, e.g. TotalSegmentator.s4ext).
S4EXT_KEYS = {
    "scm",
    "scmurl",
    "scmrevision",
    "depends",
    "build_subdirectory",
    "homepage",
    "contributors",
    "category",
    "iconurl",
    "status",
    "description",
    "screenshoturls",
    "enabled",
}


def parse_s4ext(path: Path) -> dict[str, str | None]:
    """As ExtensionsIndex 5.6 `scripts/check_description_files.py` parse_s4ext: first token is the key,
    the rest of the line the value; blank and `#` lines are skipped."""
    metadata: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(" ", 1)]
        metadata[fields[0]] = fields[1] if len(fields) == 2 else None
    return metadata


def cmake_metadata() -> dict[str, str]:
    top = (REPOSITORY / "CMakeLists.txt").read_text(encoding="utf-8")
    return dict(re.findall(r'set\(EXTENSION_([A-Z_]+) "([^"]*)"\)', top))


def test_repository_root_holds_the_license_that_pyproject_declares():
    """ExtensionsIndex (main, check_license_file) fails an extension without a root LICENSE."""
    text = (REPOSITORY / "LICENSE").read_text(encoding="utf-8")
    pyproject = (REPOSITORY / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^license = "([^"]+)"$', pyproject, re.M).group(1)  # tomllib needs Python 3.11
    assert declared == "BSD-3-Clause"
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text
    assert re.search(r"Copyright \(c\) \d{4}, \S", text)


def test_s4ext_for_slicer_5_6_says_what_sadm_json_and_cmake_say():
    """Slicer 5.6's ExtensionsIndex reads `.s4ext`, later ones `.json`: one set of facts in both."""
    s4ext = parse_s4ext(REPOSITORY / "SADM.s4ext")
    entry = json.loads((REPOSITORY / "SADM.json").read_text(encoding="utf-8"))
    cmake = cmake_metadata()
    assert set(s4ext) == S4EXT_KEYS
    assert s4ext["scm"] == entry["scm_type"] == "git"
    assert s4ext["scmurl"] == entry["scm_url"]
    assert s4ext["scmrevision"] == entry["scm_revision"]
    assert s4ext["build_subdirectory"] == entry["build_subdirectory"]
    assert s4ext["depends"].split() == entry["build_dependencies"] == cmake["DEPENDS"].split()
    assert s4ext["category"] == entry["category"] == cmake["CATEGORY"]
    assert s4ext["enabled"] == ("1" if entry.get("enabled", True) else "0")
    for key in ("homepage", "contributors", "iconurl", "description", "screenshoturls"):
        assert s4ext[key] == cmake[key.upper()], key
    repository_url = entry["scm_url"].removesuffix(".git")
    assert cmake["HOMEPAGE"].startswith(repository_url)
    for url in [cmake["ICONURL"], *cmake["SCREENSHOTURLS"].split()]:
        assert url.startswith(repository_url.replace("github.com", "raw.githubusercontent.com") + "/"), url
        assert (REPOSITORY / url.split(f"/{entry['scm_revision']}/", 1)[1]).is_file(), url


def test_contributors_are_name_org_entries_everywhere():
    """`Firstname Lastname (Org)`, comma separated, as the description file template asks; the module's
    own contributors list says the same."""
    contributors = cmake_metadata()["CONTRIBUTORS"]
    entries = re.findall(r"([^,()]+?) \(([^()]+)\)(?:, |$)", contributors)
    assert entries and ", ".join(f"{name} ({org})" for name, org in entries) == contributors
    assert "contributors" not in contributors.lower()  # not the old placeholder
    import SADMModule
    import slicerharness

    parent = slicerharness.module_parent()
    SADMModule.SADMModule(parent)
    assert parent.contributors == [f"{name} ({org})" for name, org in entries]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_the_package_ships_the_extension_license_not_slicers(tmp_path):
    """UseSlicer.cmake (v5.6.0 .. v5.10.0, line 381) sets EXTENSION_LICENSE_FILE to Slicer's License.txt
    unless the extension defines it, and SlicerExtensionCPack.cmake makes it CPACK_RESOURCE_FILE_LICENSE
    after checking EXTENSION_README_FILE and EXTENSION_LICENSE_FILE exist."""
    slicer_dir = tmp_path / "Slicer-build"
    slicer_dir.mkdir()
    (slicer_dir / "License.txt").write_text("3D Slicer license\n", encoding="utf-8")
    (slicer_dir / "README.txt").write_text("3D Slicer\n", encoding="utf-8")
    (slicer_dir / "UseSlicer.cmake").write_text(
        "if(NOT DEFINED EXTENSION_LICENSE_FILE)\n  set(EXTENSION_LICENSE_FILE ${Slicer_LICENSE_FILE})\nendif()\n"
        "if(NOT DEFINED EXTENSION_README_FILE)\n  set(EXTENSION_README_FILE ${Slicer_README_FILE})\nendif()\n",
        encoding="utf-8",
    )
    (slicer_dir / "SlicerExtensionCPack.cmake").write_text(
        "foreach(var EXTENSION_README_FILE EXTENSION_LICENSE_FILE)\n"
        '  if(NOT EXISTS ${${var}})\n    message(FATAL_ERROR "error: ${var} points to an inexistent file")\n'
        "  endif()\nendforeach()\n"
        'message(STATUS "CPACK_RESOURCE_FILE_LICENSE=${EXTENSION_LICENSE_FILE}")\n',
        encoding="utf-8",
    )
    (slicer_dir / "SlicerConfig.cmake").write_text(
        f"include({(STAND_IN_SLICER / 'SlicerConfig.cmake').as_posix()})\n"
        f"set(Slicer_LICENSE_FILE {(slicer_dir / 'License.txt').as_posix()})\n"
        f"set(Slicer_README_FILE {(slicer_dir / 'README.txt').as_posix()})\n"
        f"set(Slicer_USE_FILE {(slicer_dir / 'UseSlicer.cmake').as_posix()})\n"
        f"set(Slicer_EXTENSION_CPACK {(slicer_dir / 'SlicerExtensionCPack.cmake').as_posix()})\n",
        encoding="utf-8",
    )
    configured = subprocess.run(
        ["cmake", "-S", str(REPOSITORY), "-B", str(tmp_path / "build"), f"-DSlicer_DIR={slicer_dir}"],
        capture_output=True,
        text=True,
    )
    assert configured.returncode == 0, configured.stdout + configured.stderr
    shipped = re.search(r"CPACK_RESOURCE_FILE_LICENSE=(\S+)", configured.stdout).group(1)
    assert Path(shipped) == REPOSITORY / "LICENSE"
