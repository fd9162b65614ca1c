"""What Slicer and the Extensions Index see: module metadata, the .ui bound to the parameter node,
sample data, the ExtensionsIndex entry, the CMake files, and the self-test run end to end."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import slicer

import SADMModule
import slicerharness

REPOSITORY = Path(__file__).resolve().parents[2]
MODULE_DIR = REPOSITORY / "SADMModule"
ALLOWED_CATALOG_KEYS = {
    "$schema",
    "category",
    "scm_url",
    "scm_revision",
    "scm_type",
    "build_dependencies",
    "dicom_support_rule",
    "build_subdirectory",
    "enabled",
    "tier",
}


def test_module_metadata_and_icon(scene):
    parent = slicerharness.module_parent()
    SADMModule.SADMModule(parent)
    assert parent.title == "SADM Sequence Generation"
    assert parent.categories == ["Sequences"] and parent.dependencies == ["Sequences"]
    assert 'getModuleLogic("SADMModule").generate' in parent.helpText
    assert "IPMI 2023" in parent.acknowledgementText
    assert not parent.icon.isNull()
    assert "SADMModule" in slicer.selfTests


def test_startup_registers_both_sample_sequences_with_matching_checksums(scene):
    import SampleData

    SADMModule.SADMModule(slicerharness.module_parent())
    slicer.app.startupCompleted.emit()
    assert {SampleData.sources[name].category for name, _, _ in SADMModule.SAMPLE_DATA} == {"SADM"}
    for name, file_name, checksum in SADMModule.SAMPLE_DATA:
        source = SampleData.sources[name]
        path = MODULE_DIR / "Resources" / "SampleData" / file_name
        assert source.uris == path.as_uri() and source.loadFileTypes == "SequenceFile"
        assert source.checksums == f"SHA256:{hashlib.sha256(path.read_bytes()).hexdigest()}" == f"SHA256:{checksum}"
        assert Path(source.thumbnailFileName).is_file()
        assert path.stat().st_size < 4 * 2**20  # small enough for the repository and the installer


def test_sample_sequences_load_as_scalar_volume_sequences_on_real_geometry(scene):
    import SampleData

    SADMModule.registerSampleData()
    cardiac = SampleData.SampleDataLogic().downloadSample("SADMCardiacSynthetic")
    brain = SampleData.SampleDataLogic().downloadSample("SADMBrainSynthetic")
    assert 5 <= cardiac.GetNumberOfDataNodes() <= 8 and brain.GetNumberOfDataNodes() == 5  # room for future frames
    assert (cardiac.GetIndexName(), cardiac.GetIndexUnit()) == ("time", "s")
    assert (brain.GetIndexName(), brain.GetIndexUnit()) == ("age", "year")
    logic = SADMModule.SADMModuleLogic()
    for sequence in (cardiac, brain):
        loaded = logic.readInput(sequence)
        assert all(node.GetClassName() == "vtkMRMLScalarVolumeNode" for node in loaded.frameNodes)
        assert loaded.numericIndex
        shape = slicer.util.arrayFromVolume(sequence.GetNthDataNode(0)).shape
        assert all(slicer.util.arrayFromVolume(node).shape == shape for node in loaded.frameNodes)
    spacing = np.array(cardiac.GetNthDataNode(0).GetSpacing())
    assert spacing[2] > 4 * spacing[0]  # thick short-axis slices, as in ACDC


def test_every_parameter_widget_in_the_ui_names_a_parameter_node_field():
    tree = ElementTree.parse(MODULE_DIR / "Resources" / "UI" / "SADMModule.ui")
    bound = {}
    for widget in tree.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = widget.get("class")
    fields = SADMModule.SADMModuleParameterNode.allParameters
    assert set(bound) <= set(fields)
    assert bound == {
        "inputSequence": "qMRMLNodeComboBox",
        "futureCount": "QSpinBox",
        "device": "QComboBox",
        "sampler": "QComboBox",
        "steps": "QSpinBox",
        "samplerOptions": "QLineEdit",
        "guidance": "QDoubleSpinBox",
        "seed": "QSpinBox",
        "samples": "QSpinBox",
        "showResult": "QCheckBox",
        "showSpread": "QCheckBox",
        "times": "QLineEdit",
    }
    classes = {widget.get("class") for widget in tree.iter("widget")}
    slicer_widgets = {"qMRMLWidget", "qMRMLNodeComboBox", "qMRMLCheckableNodeComboBox", "ctkCollapsibleButton"}
    assert all(c.startswith("Q") or c in slicer_widgets for c in classes), classes


def test_panel_code_uses_only_qt_api_shared_by_pythonqt_and_pyside():
    """PythonQt exposes Qt properties as attributes, so getters such as text() must not be called;
    old-style string connects and PySide-only names do not exist in PySide / PythonQt respectively."""
    sources = [MODULE_DIR / "SADMModule.py", *sorted((MODULE_DIR / "SADMModuleLib").glob("*.py"))]
    assert len(sources) > 2  # the panel and every Lib file
    source = "\n".join(path.read_text(encoding="utf-8") for path in sources)
    property_getters = (
        r"\.(text|value|currentText|currentIndex|count|rowCount|columnCount|checked|enabled|visible|"
        r"toolTip|minimum|maximum|format|styleSheet|sizeHint|title|collapsed)\(\)"
    )
    assert not re.findall(property_getters, source)
    for forbidden in ("PySide", "shiboken", '.connect("', "Signal(", "Slot(", "exec_(", "QtCore.", "QtWidgets."):
        assert forbidden not in source, forbidden


def test_the_panel_offers_exactly_the_engine_samplers():
    from sadm.diffusion.catalogue import CATALOGUE

    extras = SADMModule.SADMModuleParameterNode.allParameters["sampler"][1]
    assert [list(extra.choices) for extra in extras if hasattr(extra, "choices")] == [list(CATALOGUE)]


def test_requirements_cover_the_engine_generation_path():
    """Every third-party import reachable from sadm.generation.engine is bundled with Slicer, comes with the
    PyTorch extension, or is listed in Resources/requirements.txt. Slicer bundles numpy, SimpleITK and
    SciPy (Slicer's CMakeLists.txt: `Slicer_USE_SCIPY "Build Slicer with SciPy" ON` since 47deb76d75, 2020;
    SuperBuild/External_python-scipy.cmake pins scipy==1.17.1 at 583e9b37d5)."""
    engine = REPOSITORY / "SADMExtension"
    seen, queue, third_party = set(), ["sadm.generation.engine"], set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        path = engine / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = engine / name.replace(".", "/") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            )
            for module in names:
                if module.startswith("sadm"):
                    queue.append(module)
                elif module.split(".")[0] not in sys.stdlib_module_names:
                    third_party.add(module.split(".")[0])
    requirements = [
        re.split(r"[<>=!~ ]", line)[0]
        for line in (MODULE_DIR / "Resources" / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    bundled = {"torch", "numpy", "SimpleITK", "scipy"}
    assert third_party <= bundled | set(requirements), third_party - bundled - set(requirements)
    assert SADMModule.SADMModuleLogic._requirementsFor(["einops"]) == ["einops>=0.7"]


def test_extensions_index_entry_follows_the_catalog_schema():
    entry = json.loads((REPOSITORY / "SADM.json").read_text(encoding="utf-8"))
    assert set(entry) <= ALLOWED_CATALOG_KEYS
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry["scm_url"].startswith("https://") and entry["scm_revision"]
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
    cmake = (REPOSITORY / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f'set(EXTENSION_CATEGORY "{entry["category"]}")' in cmake


def test_cmake_files_follow_the_extension_template_and_list_existing_files():
    top = (REPOSITORY / "CMakeLists.txt").read_text(encoding="utf-8")
    for line in (
        "project(SADM)",
        'set(EXTENSION_DEPENDS "PyTorch")',
        "add_subdirectory(SADMModule)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ):
        assert line in top
    for key in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS"):
        assert re.search(rf'set\(EXTENSION_{key} "[^"]+"\)', top), key
    icon_url = re.search(r'EXTENSION_ICONURL "([^"]+)"', top).group(1)
    screenshot_url = re.search(r'EXTENSION_SCREENSHOTURLS "([^"]+)"', top).group(1)
    assert (REPOSITORY / icon_url.split("/main/")[1]).is_file()
    assert (REPOSITORY / screenshot_url.split("/main/")[1]).is_file()

    module = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_GENERIC_TESTS" in module and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in module
    resources = re.search(r"set\(MODULE_PYTHON_RESOURCES(.*?)\)", module, re.S).group(1).split()
    for resource in resources:
        assert (MODULE_DIR / resource.replace("${MODULE_NAME}", "SADMModule")).is_file(), resource
    shipped = {
        p.relative_to(MODULE_DIR / "Resources").as_posix() for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()
    }
    listed = {r.replace("${MODULE_NAME}", "SADMModule").removeprefix("Resources/") for r in resources}
    assert shipped == listed  # nothing in Resources/ is forgotten by the installer
    scripts = re.search(r"set\(MODULE_PYTHON_SCRIPTS(.*?)\)", module, re.S).group(1).split()
    python_files = {p.relative_to(MODULE_DIR).as_posix() for p in MODULE_DIR.rglob("*.py")}
    assert {s.replace("${MODULE_NAME}", "SADMModule") for s in scripts} == python_files  # every Lib file installed


def test_installed_layout_imports_the_engine_beside_the_module(tmp_path):
    """As CMake installs it: SADMModule.py, Resources/ and sadm/ in one folder, no source checkout."""
    import shutil

    installed = tmp_path / "qt-scripted-modules"
    shutil.copytree(MODULE_DIR, installed, ignore=shutil.ignore_patterns("CMakeLists.txt", "__pycache__"))
    shutil.copytree(
        REPOSITORY / "SADMExtension" / "sadm", installed / "sadm", ignore=shutil.ignore_patterns("__pycache__")
    )
    probe = (
        f"import sys; sys.path[:0] = [{str(installed)!r}, {str(Path(__file__).parent)!r}]\n"
        f"import slicerharness; slicerharness.MODULE_DIR = __import__('pathlib').Path({str(installed)!r}); slicerharness.install()\n"
        "import SADMModule, SADMModuleLib, sadm\n"
        "print(SADMModuleLib.__file__); print(sadm.__file__); print(SADMModule.__file__)\n"
    )
    lines = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONNOUSERSITE": "1", "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    assert lines[-3] == str(installed / "SADMModuleLib" / "__init__.py")
    assert lines[-2] == str(installed / "sadm" / "__init__.py")
    assert lines[-1] == str(installed / "SADMModule.py")


def test_self_test_runs_the_user_workflow(scene, qapp):
    """SADMModuleTest, the test Slicer runs from "Reload and Test", passes under the harness."""
    SADMModule.SADMModuleTest().runTest()
