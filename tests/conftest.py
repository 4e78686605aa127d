"""Shared test set-up."""

import pytest


@pytest.fixture(autouse=True)
def _blas_not_resting():
    """Every test begins with BLAS not resting on one thread: importing ``udfs`` (the Excel
    add-in) or running the command line in this process begins the rest for the process
    (:func:`xlmvar.rest_blas_on_one_thread`), and the tests of the choice of threads expect a
    process of the user's.  A test that wants the rest begins it itself."""
    from xlmvar.engine import _threads

    _threads.rest_blas_on_one_thread(False)
    yield
    _threads.rest_blas_on_one_thread(False)
