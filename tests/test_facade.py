"""`import medgan_nb as mg`: the names the notebooks use, loaded on first use."""
import importlib
import subprocess
import sys

import pytest

import medgan_nb as mg


def test_import_loads_no_heavy_library():
    code = ("import sys, medgan_nb; heavy = [m for m in ('torch', 'matplotlib', 'pydicom', 'onnx', 'scipy') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sorted(mg.FACADE))
def test_every_facade_name_is_its_module_s_object(name):
    module = importlib.import_module(f"medgan_nb.{mg.FACADE[name]}")
    assert getattr(mg, name) is getattr(module, name)


@pytest.mark.parametrize("name", mg.SUBPACKAGES)
def test_subpackages_load_on_first_use(name):
    assert getattr(mg, name) is importlib.import_module(f"medgan_nb.{name}")


def test_unknown_names_raise_attribute_error_and_dir_lists_the_facade():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        mg.trian
    assert {"train", "evaluate", "enhance", "Config", "figures", "__version__"} <= set(dir(mg))
