"""Environment for the test process, loaded with `-p tests.testenv` before Django starts.

Tests run with production-like settings (DEBUG off, Secure/SameSite=None cookies, framing rules),
with only TLS redirection turned off because test servers speak plain HTTP on loopback.
"""

import atexit
import os
import shutil
import tempfile

if "DATABASE_URL" not in os.environ:
    # One directory per test process, so two runs in one checkout (or xdist workers) never share
    # a database file; the test database is created beside it (settings: TEST NAME).
    _db_dir = tempfile.mkdtemp(prefix="smartapp-tests-")
    atexit.register(shutil.rmtree, _db_dir, True)
    os.environ["DATABASE_URL"] = "sqlite:///" + os.path.join(_db_dir, "db.sqlite3")

_DEFAULTS = {
    "DEBUG": "False",
    "SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdefghijklmnop",
    "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver,[::1]",
    # A fixed Fernet key for tests only (urlsafe base64 of 32 bytes).
    "TOKEN_ENCRYPTION_KEYS": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=",
    "SECURE_SSL_REDIRECT": "False",
    "SECURE_PROXY_SSL_HEADER": "False",
    "STATIC_MANIFEST": "False",
    "SANDBOX_ENABLED": "False",
    "LOG_LEVEL": "WARNING",
    # The sandbox and the test servers speak plain http on loopback (see smartapp.safety).
    "SMART_ALLOW_HTTP_LOOPBACK": "True",
}
for _name, _value in _DEFAULTS.items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartapp.settings")
