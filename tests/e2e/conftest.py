"""One running stack (sandbox EHR + app) shared by the end-to-end tests of a session."""

from __future__ import annotations

import pytest

from tests.stack import Browser, Stack, start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    with start_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def browser(stack) -> Browser:
    stack.sandbox.reset_faults()
    return Browser(stack)
