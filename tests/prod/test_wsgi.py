"""The WSGI entry point settles the process before the first request: code loaded, GC frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.net import REPO

_PROBE = """
import gc, json, sys
import smartapp.wsgi
from django.template.loader import get_template
from django.template.loaders.cached import Loader
from django.template import engines
cached = engines["django"].engine.template_loaders[0]
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "views": "clinical.views" in sys.modules and "smartapp.views" in sys.modules,
    "observation_model": "fhir.resources.R4B.observation" in sys.modules,
    "templates_cached": isinstance(cached, Loader) and len(cached.get_template_cache) >= 3,
}))
"""


def test_the_wsgi_module_loads_the_request_path_and_freezes_the_startup_objects():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["frozen"] > 20_000  # Django and the FHIR models: tens of thousands of objects
    assert facts["views"] and facts["observation_model"] and facts["templates_cached"]
