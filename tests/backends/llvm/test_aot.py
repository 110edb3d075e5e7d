"""AOT: export a shared library + header, call it from a C program built with `cc`, compare
its output with the reference interpreter."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from graphcnn.backends.llvm import export_library
from graphcnn.backends.llvm.aot import find_cc
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2

import graphcnn as gc

pytestmark = pytest.mark.skipif(find_cc() is None, reason="no C compiler (cc) to link and "
                                                          "build the test program")

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "libnet.h"

int main(int argc, char** argv) {
    static float x[NET_INPUT_0_SIZE], y[NET_OUTPUT_0_SIZE];
    FILE* f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof(float), NET_INPUT_0_SIZE, f) != NET_INPUT_0_SIZE)
        return 2;
    fclose(f);
    void* ws = aligned_alloc(64, NET_WORKSPACE_BYTES);
    float* in[] = {x};
    float* out[] = {y};
    net_init_threads(atoi(argv[3]));
    if (net_run(in, out, ws) || net_run(in, out, ws))
        return 3;
    net_shutdown_threads();
    f = fopen(argv[2], "wb");
    fwrite(y, sizeof(float), NET_OUTPUT_0_SIZE, f);
    fclose(f);
    free(ws);
    return 0;
}
"""


def lenet() -> gc.Graph:
    gc.manual_seed(3)
    return gc.Sequential(
        gc.Conv2d(1, 6, 5, padding=2), gc.ReLU(), gc.MaxPool2d(2),
        gc.Conv2d(6, 16, 5), gc.ReLU(), gc.AvgPool2d(2),
        gc.Flatten(), gc.Dense(400, 84), gc.Sigmoid(), gc.Dense(84, 10), gc.Softmax(),
    ).build((2, 1, 28, 28))


@pytest.mark.parametrize("threads", [1, 2])
def test_c_program_calls_the_library(tmp_path, threads):
    graph = lenet()
    header = export_library(graph, tmp_path / "libnet.so")
    assert header.endswith("libnet.h")
    text = (tmp_path / "libnet.h").read_text()
    assert "int net_run(float** inputs, float** outputs, void* workspace);" in text
    assert "#define NET_INPUT_0_CTYPE float" in text
    assert "#define NET_INPUT_0_SHAPE {2, 1, 28, 28}" in text
    (tmp_path / "main.c").write_text(PROGRAM)
    cc = find_cc()
    subprocess.run([cc, "-O1", "-o", str(tmp_path / "main"), str(tmp_path / "main.c"),
                    f"-I{tmp_path}", f"-L{tmp_path}", "-lnet", f"-Wl,-rpath,{tmp_path}"],
                   check=True)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    subprocess.run([str(tmp_path / "main"), str(tmp_path / "x.bin"), str(tmp_path / "y.bin"),
                    str(threads)], check=True, timeout=60)
    y = np.fromfile(tmp_path / "y.bin", dtype=np.float32).reshape(2, 10)
    assert rel_l2(y, interpret(graph, [x])[0]) <= 1e-4


def test_compiled_model_exports(tmp_path):
    cm = gc.compile(lenet(), target="llvm", cache=False)
    cm.export_library(tmp_path / "libm2.so")
    assert (tmp_path / "libm2.so").stat().st_size > cm.weights_bytes
    assert "M2_WORKSPACE_BYTES" in (tmp_path / "libm2.h").read_text()


HOSTILE_NAMES = ['x"\n#error boom', "*/ int injected; /*", "??=??/ \\ é\t\0end"]

NAMES_PROGRAM = r"""
#include <stdio.h>
#include "libnet.h"

static void hex(const char* s, unsigned long n) {
    for (unsigned long i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
    printf("\n");
}

int main(void) {
    /* sizeof keeps the bytes after an embedded NUL */
    hex(NET_GRAPH_NAME, sizeof(NET_GRAPH_NAME) - 1);
    hex(NET_INPUT_0_NAME, sizeof(NET_INPUT_0_NAME) - 1);
    hex(NET_OUTPUT_0_NAME, sizeof(NET_OUTPUT_0_NAME) - 1);
    return 0;
}
"""


def hostile_graph(name: str, graph_name: str | None = None) -> gc.Graph:
    g = gc.Graph(name if graph_name is None else graph_name)
    x = g.add_input(name, (2, 3))
    y = g.apply("relu", [x])
    y.name = name + "*/"
    g.set_outputs([y])
    return g


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["quote-newline", "comment-end", "trigraph"])
def test_hostile_names_in_the_header_are_escaped(tmp_path, name):
    """A name cannot end its string literal, start a preprocessor line or close a comment:
    the header compiles (cc -fsyntax-only, warnings as errors for trigraphs) and the names
    read back byte for byte."""
    from graphcnn.backends.llvm.aot import c_header

    cc = find_cc()
    graph = hostile_graph(name)
    (tmp_path / "libnet.h").write_text(c_header(graph, "net", 64, "generic"))
    (tmp_path / "main.c").write_text(NAMES_PROGRAM)
    check = subprocess.run([cc, "-fsyntax-only", "-Wall", "-Werror", "-trigraphs",
                            str(tmp_path / "main.c")], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr
    subprocess.run([cc, "-o", str(tmp_path / "names"), str(tmp_path / "main.c")], check=True)
    lines = subprocess.run([str(tmp_path / "names")], capture_output=True, text=True,
                           check=True).stdout.split()
    assert [bytes.fromhex(h).decode() for h in lines] == [name, name, name + "*/"]


def test_export_library_with_a_hostile_input_name(tmp_path):
    graph = hostile_graph(HOSTILE_NAMES[0], graph_name="hostile")
    header = export_library(graph, tmp_path / "libnet.so")
    (tmp_path / "main.c").write_text(NAMES_PROGRAM)
    subprocess.run([find_cc(), "-o", str(tmp_path / "names"), str(tmp_path / "main.c"),
                    f"-I{tmp_path}"], check=True)
    lines = subprocess.run([str(tmp_path / "names")], capture_output=True, text=True,
                           check=True).stdout.split()
    assert bytes.fromhex(lines[1]).decode() == HOSTILE_NAMES[0]
    with open(header) as f:
        assert "#error" not in [line.split(" ")[0] for line in f.read().splitlines()]


EMBED_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "libembed.h"

int main(int argc, char** argv) {
    static EMBED_INPUT_0_CTYPE ids[EMBED_INPUT_0_SIZE];
    static EMBED_OUTPUT_0_CTYPE y[EMBED_OUTPUT_0_SIZE];
    FILE* f = fopen(argv[1], "rb");
    if (!f || fread(ids, sizeof ids[0], EMBED_INPUT_0_SIZE, f) != EMBED_INPUT_0_SIZE)
        return 2;
    fclose(f);
    void* ws = aligned_alloc(64, EMBED_WORKSPACE_BYTES);
    void* in[] = {ids};
    void* out[] = {y};
    int status = embed_run(in, out, ws);
    f = fopen(argv[2], "wb");
    fwrite(y, sizeof y[0], EMBED_OUTPUT_0_SIZE, f);
    fclose(f);
    free(ws);
    printf("%d\n", status);
    return 0;
}
"""


def test_int64_ids_and_the_error_status_through_the_c_entry(tmp_path):
    """An embedding takes int64 ids from C; an id outside the table makes run return the
    gather kernel's nonzero status instead of reading outside it."""
    gc.manual_seed(5)
    graph = gc.Sequential(gc.Embedding(9, 6), gc.Flatten()).build((2, 4), input_dtype="int64")
    export_library(graph, tmp_path / "libembed.so")
    text = (tmp_path / "libembed.h").read_text()
    assert "#define EMBED_INPUT_0_CTYPE int64_t" in text
    assert "#define EMBED_OUTPUT_0_CTYPE float" in text
    assert "int embed_run(void** inputs, void** outputs, void* workspace);" in text
    (tmp_path / "main.c").write_text(EMBED_PROGRAM)
    subprocess.run([find_cc(), "-O1", "-Wall", "-Werror", "-o", str(tmp_path / "main"),
                    str(tmp_path / "main.c"), f"-I{tmp_path}", f"-L{tmp_path}", "-lembed",
                    f"-Wl,-rpath,{tmp_path}"], check=True)
    ids = np.random.default_rng(2).integers(-9, 9, (2, 4)).astype(np.int64)
    for bad in (None, 9, -10):
        if bad is not None:
            ids[1, 2] = bad
        ids.tofile(tmp_path / "ids.bin")
        proc = subprocess.run([str(tmp_path / "main"), str(tmp_path / "ids.bin"),
                               str(tmp_path / "y.bin")], check=True, timeout=60,
                              capture_output=True, text=True)
        status = int(proc.stdout)
        if bad is None:
            assert status == 0
            y = np.fromfile(tmp_path / "y.bin", dtype=np.float32).reshape(2, 24)
            np.testing.assert_array_equal(y, interpret(graph, [ids])[0])
        else:
            assert status > 0
