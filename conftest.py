"""Test-session set-up shared by tests/ and the notebooks under nbval.

Runs go to a temporary folder named by $MEDGAN_OUTPUT (read by `medgan_nb.config.default_output_dir` and
`notebook_config`), so the test suite never writes into the user's output/ folder. Notebook kernels and
CLI subprocesses inherit the variable.
"""
import os
import shutil
import tempfile

_OWN_OUTPUT = "MEDGAN_OUTPUT" not in os.environ
if _OWN_OUTPUT:
    os.environ["MEDGAN_OUTPUT"] = tempfile.mkdtemp(prefix="medgan-test-output-")


def pytest_sessionfinish(session, exitstatus):
    if _OWN_OUTPUT:                      # the folder this session made, nothing else
        shutil.rmtree(os.environ["MEDGAN_OUTPUT"], ignore_errors=True)
