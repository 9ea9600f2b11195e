"""The old path of ``fastbin.kernels.sign_product.avx512`` (moved by issue 22), kept only
while README.md still names it; delete it once the README points to the new module."""
from .sign_product.avx512 import *  # noqa: F403
from .sign_product.avx512 import __all__  # noqa: F401
