"""Every project module imports on its own, in a fresh interpreter: no import cycle hides behind
the order in which Django happens to load things (issue 14, item 5).

A module is imported first, before Django is set up, so a cycle among its imports shows as an
ImportError; only a module that needs the app registry (models, admin, views) is imported again
after `django.setup()`. A second check keeps imports of project modules at module level in
`smartapp` and `clinical`: an import inside a function must not hide a cycle.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("smartapp", "clinical", "sandbox")
PROJECT = ("smartapp", "clinical", "sandbox")
# Function-level project imports that are not about cycles: AppConfig.ready() is where Django
# wants signal and check registration imported; wsgi warms up after the app is loaded.
ALLOWED_LATE_IMPORTS = {"smartapp/apps.py", "smartapp/wsgi.py"}

IMPORT_ALONE = """
import importlib, sys
from django.core.exceptions import AppRegistryNotReady
name = sys.argv[1]
try:
    importlib.import_module(name)
except AppRegistryNotReady:
    import django
    django.setup()
    importlib.import_module(name)
"""


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", _modules())
def test_it_imports_alone_in_a_fresh_interpreter(module):
    if module == "smartapp.wsgi":
        pytest.skip("wsgi builds the whole application at import; the other modules cover it")
    # The sandbox's own settings refuse to load without DEBUG unless told it is a test.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_ALLOW_WITHOUT_DEBUG": "True"}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _late_project_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.module:
                names = [inner.module]
            elif isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            else:
                continue
            if any(name.split(".")[0] in PROJECT for name in names):
                found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return found


def test_smartapp_and_clinical_import_project_modules_at_module_level():
    late = [
        where
        for package in ("smartapp", "clinical")
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in ALLOWED_LATE_IMPORTS
        for where in _late_project_imports(path)
    ]
    assert late == []
