"""The one tolerance table per float dtype for fast-vs-reference comparisons.

Integer results are compared exactly (``np.testing.assert_array_equal``). Float
kernels accumulate with reassociation (vectorised sums) where NumPy uses BLAS
or pairwise sums, so results agree to a few ulps times the reduction length;
``atol`` is scaled by the magnitude of the expected values so that sums with
cancellation are judged against the size of what was summed.
"""
import numpy as np

TOLERANCES = {
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12),
}


def assert_close(actual, expected, dtype=None, scale=None, err_msg=""):
    """``actual`` equals ``expected`` within the table's tolerance for ``dtype``
    (default: ``actual``'s dtype). ``atol`` is multiplied by ``scale`` (default:
    ``max(1, max|expected|)``)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    dtype = np.dtype(dtype or actual.dtype)
    tol = TOLERANCES[dtype]
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(
        actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=err_msg
    )
