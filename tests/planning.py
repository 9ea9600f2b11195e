"""Plan as on another CPU: the probes of ``fastbin._config`` and a copy of a kind's table
(``fastbin._tables``), monkeypatched where the planners read them (at call time)."""
from fastbin import _config, _tables

#: The probes of each CPU kind (``"avx512"``: AVX-512F/BW/VNNI with VPOPCNTDQ, as Zen 4-5, Ice Lake).
PROBES = {
    "avx512": {"FLOAT_LUT": True, "INT16_LUT": True, "INT8_MADD": True, "INT8_DOT": True, "FLOAT_LUT8": True,
               "BYTE_LUT16": True, "SIGN_MATMUL_BLAS": False, "SIGN_MATMUL_UINT8_FLOAT_PATH": False},
    "avx2": {"FLOAT_LUT": False, "INT16_LUT": False, "INT8_MADD": True, "INT8_DOT": False, "FLOAT_LUT8": True,
             "BYTE_LUT16": True, "SIGN_MATMUL_BLAS": True, "SIGN_MATMUL_UINT8_FLOAT_PATH": True},
    "neon": {"FLOAT_LUT": False, "INT16_LUT": False, "INT8_MADD": False, "INT8_DOT": False, "FLOAT_LUT8": False,
             "BYTE_LUT16": False, "SIGN_MATMUL_BLAS": False, "SIGN_MATMUL_UINT8_FLOAT_PATH": True},
    "generic": {"FLOAT_LUT": False, "INT16_LUT": False, "INT8_MADD": False, "INT8_DOT": False, "FLOAT_LUT8": False,
                "BYTE_LUT16": False, "SIGN_MATMUL_BLAS": False, "SIGN_MATMUL_UINT8_FLOAT_PATH": True},
}


def use_cpu(monkeypatch, kind, **changes):
    """Plan as on a CPU of ``kind``; ``changes``: upper-case names set probes, lower-case
    ones table entries. Returns the table in use."""
    for name, value in PROBES[kind].items():
        monkeypatch.setattr(_config, name, changes.pop(name, value))
    for name in [key for key in changes if key.isupper()]:
        monkeypatch.setattr(_config, name, changes.pop(name))
    table = _tables.Table({**_tables.TABLES[kind], **changes})  # its edits empty the planners' memo
    table["parallel_min_work"] = _tables.Table(table["parallel_min_work"])
    monkeypatch.setattr(_config, "TABLE", table)
    return table
