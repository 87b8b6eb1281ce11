"""The suite's own scheduling (tests/conftest.py): under ``--dist loadgroup`` a test that names
a group carries it to the worker that runs it; without that, a group's tests scatter over the
workers and each one rebuilds the group's module-scoped fixtures."""
import os

import pytest


@pytest.mark.xdist_group("suite-setup")
def test_a_grouped_test_runs_in_its_xdist_group(request):
    if os.environ.get("PYTEST_XDIST_WORKER") is None or not request.config.getvalue("loadgroup"):
        pytest.skip("not a pytest-xdist worker under --dist loadgroup")
    assert request.node.nodeid.endswith("@suite-setup"), request.node.nodeid
