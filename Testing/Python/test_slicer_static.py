"""What Slicer would only find out when loading the modules: the GUI files, checked without Qt.

Parses each module's .py (ast), .ui (XML) and CMakeLists.txt, and checks that they agree with each other:
the widget names the code uses, the parameter names the .ui binds, the files CMake installs.
"""

from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("LiverFusionSeg", "LiverFusionSynth")
GUI_ONLY_IMPORTS = ("qt", "ctk", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", "slicer.i18n")


def module_tree(name: str) -> ast.Module:
    return ast.parse((ROOT / name / f"{name}.py").read_text(encoding="utf-8"), filename=f"{name}.py")


def ui_root(name: str) -> ET.Element:
    return ET.parse(ROOT / name / "Resources" / "UI" / f"{name}.ui").getroot()


def classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def parameter_fields(tree: ast.Module) -> dict[str, ast.expr]:
    """Field name -> annotation of the class decorated with @parameterNodeWrapper."""
    wrapped = [c for c in classes(tree).values()
               if any(isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in c.decorator_list)]
    assert len(wrapped) == 1
    return {s.target.id: s.annotation for s in wrapped[0].body if isinstance(s, ast.AnnAssign)}


def ui_names_used(tree: ast.Module) -> set[str]:
    """Every X in `self.ui.X`."""
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}


def widget_property(widget: ET.Element, name: str) -> ET.Element | None:
    return next((p for p in widget.findall("property") if p.get("name") == name), None)


def bound_widgets(root: ET.Element) -> dict[str, ET.Element]:
    """SlicerParameterName -> widget."""
    out = {}
    for widget in root.iter("widget"):
        prop = widget_property(widget, "SlicerParameterName")
        if prop is not None:
            out[prop.find("string").text] = widget
    return out


def cmake_files(name: str) -> set[str]:
    """Files listed in MODULE_PYTHON_SCRIPTS and MODULE_PYTHON_RESOURCES, ${MODULE_NAME} expanded."""
    text = (ROOT / name / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = set()
    for block in re.findall(r"set\(MODULE_PYTHON_(?:SCRIPTS|RESOURCES)\s+(.*?)\)", text, re.S):
        listed |= {item.replace("${MODULE_NAME}", name) for item in block.split()}
    return listed


@pytest.mark.parametrize("name", MODULES)
def test_module_defines_the_scripted_module_classes(name):
    found = classes(module_tree(name))
    for suffix, base in (("", "ScriptedLoadableModule"), ("Widget", "ScriptedLoadableModuleWidget"),
                         ("Logic", "ScriptedLoadableModuleLogic"), ("Test", "ScriptedLoadableModuleTest")):
        assert base in {b.id for b in found[name + suffix].bases if isinstance(b, ast.Name)}
    assert f"{name}ParameterNode" in found


@pytest.mark.parametrize("name", MODULES)
def test_module_metadata_is_set_and_in_the_segmentation_category(name):
    init = next(f for f in classes(module_tree(name))[name].body if isinstance(f, ast.FunctionDef))
    assigned = {t.attr: s.value for s in init.body if isinstance(s, ast.Assign)
                for t in s.targets if isinstance(t, ast.Attribute)}
    assert {"title", "categories", "contributors", "helpText", "acknowledgementText"} <= set(assigned)
    categories = [n.value for n in ast.walk(assigned["categories"]) if isinstance(n, ast.Constant)]
    assert "Segmentation" in categories


@pytest.mark.parametrize("name", MODULES)
def test_logic_takes_its_scene_and_says_it_works_without_the_widget(name):
    logic = classes(module_tree(name))[f"{name}Logic"]
    assert "can be used without GUI widget" in ast.get_docstring(logic)
    init = next(f for f in logic.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    assert [a.arg for a in init.args.args] == ["self", "scene"]
    assert isinstance(init.args.defaults[0], ast.Constant) and init.args.defaults[0].value is None


@pytest.mark.parametrize("name", MODULES)
def test_every_ui_name_the_code_uses_exists_in_the_ui_file(name):
    used = ui_names_used(module_tree(name))
    declared = {w.get("name") for w in ui_root(name).iter("widget")}
    assert used and used <= declared, used - declared


@pytest.mark.parametrize("name", MODULES)
def test_every_bound_widget_names_a_parameter_node_field(name):
    fields = parameter_fields(module_tree(name))
    bound = bound_widgets(ui_root(name))
    assert bound and set(bound) <= set(fields), set(bound) - set(fields)


@pytest.mark.parametrize("name", MODULES)
def test_node_selectors_list_their_node_type_and_get_the_scene(name):
    root, fields = ui_root(name), parameter_fields(module_tree(name))
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    for parameter, widget in bound_widgets(root).items():
        if widget.get("class") != "qMRMLNodeComboBox":
            continue
        node_types = [s.text for s in widget_property(widget, "nodeTypes").iter("string")]
        assert ast.unparse(fields[parameter]) in node_types
        assert widget.get("name") in receivers
    mrml_widgets = {w.get("name") for w in root.iter("widget") if w.get("class") in ("qMRMLNodeComboBox",
                                                                                     "qMRMLTableView")}
    assert mrml_widgets <= receivers


@pytest.mark.parametrize("name", MODULES)
def test_custom_widgets_used_in_the_ui_are_declared(name):
    root = ui_root(name)
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert {c for c in used if not c.startswith("Q")} <= declared


@pytest.mark.parametrize("name", MODULES)
def test_cmake_lists_every_file_of_the_module_and_nothing_else(name):
    folder = ROOT / name
    on_disk = {str(p.relative_to(folder)) for suffix in ("*.py", "*.ui", "*.png") for p in folder.rglob(suffix)
               if "__pycache__" not in p.parts}
    assert cmake_files(name) == on_disk
    text = (folder / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f"set(MODULE_NAME {name})" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert "slicerMacroBuildScriptedModule(" in text


@pytest.mark.parametrize("name", MODULES)
def test_qt_free_code_imports_nothing_only_slicer_s_gui_provides(name):
    folder = ROOT / name
    for path in [*(folder / f"{name}Lib").glob("*.py"), *(folder / "Resources").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                assert not module.startswith(GUI_ONLY_IMPORTS), f"{path.name} imports {module}"


@pytest.mark.parametrize("name", MODULES)
def test_icon_is_a_128_pixel_png(name):
    with Image.open(ROOT / name / "Resources" / "Icons" / f"{name}.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)


def slicer_names_used(path: Path) -> set[str]:
    """The longest `slicer.a.b...` (and `PyTorchUtils.a.b`) attribute chains in a file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        chain, value = [], node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if chain and isinstance(value, ast.Name) and value.id in ("slicer", "PyTorchUtils"):
            names.add(".".join([value.id, *reversed(chain)]))
    return {n for n in names if not any(m.startswith(n + ".") for m in names)}


def checked_slicer_names() -> set[str]:
    """Testing/slicer_api_names.txt: each name with where Slicer's (or SlicerPyTorch's) source defines it."""
    lines = (ROOT / "Testing" / "slicer_api_names.txt").read_text(encoding="utf-8").splitlines()
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


@pytest.mark.parametrize("name", MODULES)
def test_every_slicer_api_the_module_calls_was_checked_against_slicers_source(name):
    files = [ROOT / name / f"{name}.py", *sorted((ROOT / name).glob(f"{name}Lib/*.py")),
             *sorted((ROOT / name / "Resources" / "Scripts").glob("*.py"))]
    used = set().union(*(slicer_names_used(f) for f in files))
    checked = checked_slicer_names()
    # exact names; a class reached through a call (`PyTorchUtils.PyTorchUtilsLogic().installTorch`) counts as
    # checked when one of its members is
    unchecked = {n for n in used if n not in checked and not any(c.startswith(n + ".") for c in checked)}
    assert not unchecked, f"check against Slicer's source, then list in Testing/slicer_api_names.txt: {unchecked}"


def test_the_extension_installs_every_subpackage_of_the_core_and_the_bundles_where_the_store_looks():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    core = re.search(r"install\(DIRECTORY liverfusion\s+DESTINATION (\S+)\s+COMPONENT \S+\s+FILES_MATCHING PATTERN "
                     r'"\*\.py"\)', text)
    models = re.search(r"install\(DIRECTORY Resources/Models\s+DESTINATION (\S+)/Resources", text)
    assert core and models and core.group(1) == models.group(1)  # liverfusion/../Resources/Models once installed
    folders = [d for d in (ROOT / "liverfusion").rglob("*") if d.is_dir() and d.name != "__pycache__"]
    assert len(folders) > 5 and all((d / "__init__.py").is_file() for d in folders)  # the directory install takes all
    from liverfusion.models import store

    if "LIVERFUSION_MODELS" not in os.environ:
        assert store.MODELS_DIR == ROOT / "Resources" / "Models"
