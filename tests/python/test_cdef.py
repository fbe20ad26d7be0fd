# SPDX-License-Identifier: MIT
"""The binding's cdef (python/shmrpc/_cdef.py) says exactly what
include/shmrpc.h says: the same declarations, the same constants, the same
struct layouts (as a C compiler lays them out). A function, field, struct or
constant added to the header fails here until the cdef has it too."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from shmrpc import _cdef
from shmrpc._lib import ffi

HEADER = os.path.join(ROOT, "include", "shmrpc.h")


def strip_comments(src):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", src, flags=re.S)


def defines(src):
    """SHMRPC_* integer constants: name -> value."""
    out = {}
    for name, value in re.findall(r"^\s*#\s*define\s+(SHMRPC_\w+)[ \t]+([^\n]+)$",
                                  strip_comments(src), re.M):
        v = value.strip().strip("()").rstrip("uUlL")
        if re.fullmatch(r"-?(0[xX][0-9a-fA-F]+|\d+)", v):
            out[name] = int(v, 0)
    return out


def declarations(src):
    """Top-level declarations, whitespace-normalised, preprocessor lines,
    SHMRPC_API and the C++ guards left out."""
    lines, skip = [], False
    for line in strip_comments(src).splitlines():
        s = line.strip()
        if s.startswith("#ifdef __cplusplus"):
            skip = True
        elif skip and s.startswith("#endif"):
            skip = False
        elif not skip and not s.startswith("#"):
            lines.append(line)
    text = re.sub(r"\bSHMRPC_API\b", " ", "\n".join(lines))
    decls, depth, cur = set(), 0, []
    for tok in re.findall(r"\w+|[^\s\w]", text):
        cur.append(tok)
        depth += tok == "{"
        depth -= tok == "}"
        if tok == ";" and depth == 0:
            decls.add(" ".join(cur))
            cur = []
    assert not cur, f"unterminated declaration: {' '.join(cur)}"
    return decls


def test_cdef_declares_what_the_header_declares():
    with open(HEADER) as f:
        header = f.read()
    h, c = declarations(header), declarations(_cdef.CDEF)
    assert len(h) > 30  # the parse found the API, not nothing
    missing, extra = sorted(h - c), sorted(c - h)
    assert not missing, "in include/shmrpc.h, not in the cdef:\n" + "\n".join(missing)
    assert not extra, "in the cdef, not in include/shmrpc.h:\n" + "\n".join(extra)


def test_cdef_constants_match_the_header():
    with open(HEADER) as f:
        h = defines(f.read())
    c = defines(_cdef.CDEF)
    h.pop("SHMRPC_H", None)
    assert h == c


def test_every_function_is_exported_by_the_library():
    from shmrpc._lib import lib

    names = re.findall(r"\b(shmrpc_\w+)\s*\(", strip_comments(open(HEADER).read()))
    assert set(names) - {"shmrpc_log_fn", "shmrpc_handler"} == set(_cdef.FUNCTIONS)
    for name in _cdef.FUNCTIONS:
        assert getattr(lib, name)


def test_struct_layouts_match_the_compiler(tmp_path):
    """sizeof, alignment and every field's offset and size, as cffi computes
    them from the cdef and as the C compiler does from the header."""
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        pytest.skip(f"no C compiler ({cc}) to compare layouts with")
    with open(HEADER) as f:
        structs = sorted(set(re.findall(r"\bstruct\s+(\w+)\s*\{", strip_comments(f.read()))))
    assert structs, "no struct found in the header"
    lines, want = [], []
    for s in structs:
        t = ffi.typeof(f"struct {s}")  # KeyError here: the cdef lacks the struct
        lines.append(f'printf("{s} %zu %zu\\n", sizeof(struct {s}), _Alignof(struct {s}));')
        want.append(f"{s} {ffi.sizeof(t)} {ffi.alignof(t)}")
        for name, field in t.fields:
            lines.append(f'printf("{s}.{name} %zu %zu\\n", offsetof(struct {s}, {name}), '
                         f"sizeof(((struct {s} *)0)->{name}));")
            want.append(f"{s}.{name} {field.offset} {ffi.sizeof(field.type)}")
    src = tmp_path / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include <shmrpc.h>\n"
                   "int main(void)\n{\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", os.path.join(ROOT, "include"),
                    "-o", str(exe), str(src)], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    assert got.split("\n")[:-1] == want


def test_the_check_catches_a_missing_function():
    """The comparison itself can fail: a header with one more function."""
    with open(HEADER) as f:
        header = f.read()
    grown = header.replace("#ifdef __cplusplus\n}",
                           "SHMRPC_API int shmrpc_new_call(struct shmrpc_node *node);\n"
                           "#ifdef __cplusplus\n}")
    assert grown != header
    assert declarations(grown) - declarations(_cdef.CDEF) == {
        "int shmrpc_new_call ( struct shmrpc_node * node ) ;"}
    field = header.replace("\tint32_t spin_us;", "\tint32_t spin_us;\n\tuint32_t added;")
    assert field != header
    assert declarations(field) != declarations(_cdef.CDEF)
