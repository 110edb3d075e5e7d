"""AOT names and CPUs: every exported symbol and macro carries the library's name, kernels stay
local, two models link into one C program; portable x86-64 levels compile and agree."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from graphcnn.backends.llvm import export_library
from graphcnn.backends.llvm.aot import find_cc, library_name
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2

import graphcnn as gc
from graphcnn.errors import CompileError

needs_cc = pytest.mark.skipif(find_cc() is None, reason="no C compiler (cc)")

TWO_MODELS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "libconvnet.h"
#include "libmlp.h"

static int read(const char* path, float* x, size_t n) {
    FILE* f = fopen(path, "rb");
    int ok = f && fread(x, sizeof(float), n, f) == n;
    if (f) fclose(f);
    return ok;
}

static void write(const char* path, const float* y, size_t n) {
    FILE* f = fopen(path, "wb");
    fwrite(y, sizeof(float), n, f);
    fclose(f);
}

int main(int argc, char** argv) {
    static float a[CONVNET_INPUT_0_SIZE], ya[CONVNET_OUTPUT_0_SIZE];
    static float b[MLP_INPUT_0_SIZE], yb[MLP_OUTPUT_0_SIZE];
    if (!read(argv[1], a, CONVNET_INPUT_0_SIZE) || !read(argv[2], b, MLP_INPUT_0_SIZE))
        return 2;
    void* wa = aligned_alloc(64, CONVNET_WORKSPACE_BYTES);
    void* wb = aligned_alloc(64, MLP_WORKSPACE_BYTES);
    float* ina[] = {a}; float* outa[] = {ya};
    float* inb[] = {b}; float* outb[] = {yb};
    convnet_init_threads(2);
    if (convnet_run(ina, outa, wa) || mlp_run(inb, outb, wb))
        return 3;
    convnet_shutdown_threads();
    write(argv[3], ya, CONVNET_OUTPUT_0_SIZE);
    write(argv[4], yb, MLP_OUTPUT_0_SIZE);
    free(wa);
    free(wb);
    return 0;
}
"""


def convnet() -> gc.Graph:
    gc.manual_seed(1)
    return gc.Sequential(gc.Conv2d(3, 8, 3, padding=1), gc.ReLU(), gc.MaxPool2d(2),
                         gc.Flatten(), gc.Dense(8 * 4 * 4, 5)).build((1, 3, 8, 8))


def mlp() -> gc.Graph:
    gc.manual_seed(2)
    return gc.Sequential(gc.Dense(12, 7), gc.Sigmoid(), gc.Dense(7, 3),
                         gc.Softmax()).build((2, 12))


def exported(lib) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


@needs_cc
@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
def test_two_models_in_one_c_program(tmp_path):
    """Each library exports only its prefixed entry points (no `run`, kernels or weights),
    its header only prefixed macros, so both link into one program and agree with the
    reference."""
    graphs = {"convnet": convnet(), "mlp": mlp()}
    export_library(graphs["convnet"], tmp_path / "libconvnet.so")  # name from the file
    export_library(graphs["mlp"], tmp_path / "libmlp.so", name="mlp", cpu="x86-64-v3")
    for name in graphs:
        assert exported(tmp_path / f"lib{name}.so") == {
            f"{name}_run", f"{name}_run_batch", f"{name}_init_threads",
            f"{name}_shutdown_threads"}
        for line in (tmp_path / f"lib{name}.h").read_text().splitlines():
            if line.startswith("#define "):
                assert line.split()[1].startswith((f"{name.upper()}_", f"GRAPHCNN_{name.upper()}"))
    assert '#define MLP_CPU "x86-64-v3"' in (tmp_path / "libmlp.h").read_text()
    (tmp_path / "main.c").write_text(TWO_MODELS)
    subprocess.run([find_cc(), "-O1", "-Wall", "-Werror", "-o", str(tmp_path / "main"),
                    str(tmp_path / "main.c"), f"-I{tmp_path}", f"-L{tmp_path}", "-lconvnet",
                    "-lmlp", f"-Wl,-rpath,{tmp_path}"], check=True)
    rng = np.random.default_rng(4)
    xs = {n: rng.standard_normal(g.inputs[0].type.shape).astype(np.float32)
          for n, g in graphs.items()}
    for n, x in xs.items():
        x.tofile(tmp_path / f"{n}.in")
    subprocess.run([str(tmp_path / "main"), str(tmp_path / "convnet.in"),
                    str(tmp_path / "mlp.in"), str(tmp_path / "convnet.out"),
                    str(tmp_path / "mlp.out")], check=True, timeout=60)
    for n, g in graphs.items():
        want = interpret(g, [xs[n]])[0]
        got = np.fromfile(tmp_path / f"{n}.out", dtype=np.float32).reshape(want.shape)
        assert rel_l2(got, want) <= 1e-5


@pytest.mark.parametrize("path,name,want", [
    ("libresnet.so", None, "resnet"), ("out/libres-net.v2.so", None, "res_net"),
    ("lib3d.so", None, "model_3d"), ("lib.so", None, "model"), ("x.so", "resnet", "resnet")])
def test_library_name_is_a_c_identifier(path, name, want):
    assert library_name(path, name) == want


@pytest.mark.parametrize("name", ["3d", "res-net", "", "a b"])
def test_a_name_that_is_no_c_identifier_is_refused(name, tmp_path):
    with pytest.raises(CompileError, match="not a C identifier"):
        export_library(mlp(), tmp_path / "libm.so", name=name)


def test_export_into_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(CompileError, match="does not exist"):
        export_library(mlp(), tmp_path / "no" / "such" / "libm.so")


@pytest.mark.parametrize("cpu", ["x86-64-v2", "x86-64-v3", "generic"])
def test_portable_levels_match_the_reference(cpu):
    graph = convnet()
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    cm = gc.compile(graph, target="llvm", cpu=cpu, cache=False)
    assert rel_l2(cm(x), interpret(graph, [x])[0]) <= 1e-5


def test_levels_spell_out_their_features():
    from graphcnn.backends.llvm.codegen import cpu_and_features, vector_width

    assert cpu_and_features("x86-64-v3")[0] == "x86-64-v3"
    assert "+fma" in cpu_and_features("x86-64-v3")[1].split(",")
    assert "+avx" not in cpu_and_features("x86-64-v2")[1].split(",")
    assert [vector_width(c) for c in ("x86-64-v2", "x86-64-v3", "x86-64-v4")] == [4, 8, 16]



def test_named_cpus_get_their_vector_width():
    """A named LLVM CPU has no feature string here: its width is what LLVM emits for it."""
    from graphcnn.backends.llvm.codegen import vector_width

    assert [vector_width(c) for c in ("nehalem", "haswell", "skylake-avx512")] == [4, 8, 16]
    graph = convnet()
    x = np.random.default_rng(6).standard_normal((1, 3, 8, 8)).astype(np.float32)
    cm = gc.compile(graph, target="llvm", cpu="haswell", cache=False)
    assert rel_l2(cm(x), interpret(graph, [x])[0]) <= 1e-5
