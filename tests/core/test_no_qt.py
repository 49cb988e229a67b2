"""s2ld_core must never load Qt."""

import json
import pkgutil
import subprocess
import sys

import s2ld_core
from tests.conftest import REPO


def test_core_imports_no_qt():
    modules = sorted(m.name for m in pkgutil.iter_modules(s2ld_core.__path__, "s2ld_core."))
    assert len(modules) >= 5
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6', 'pyqtgraph'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
