"""IR-text tests of the emission helpers: named values, vector loop + scalar tail, the pool."""
from __future__ import annotations

import re

from graphcnn.backends.llvm import threads
from graphcnn.backends.llvm.builder import load, store, vec_loop
from graphcnn.backends.llvm.emit.elementwise import broadcast_plan
from llvmlite import ir

F32P = ir.FloatType().as_pointer()


def _fn() -> tuple[ir.Module, ir.IRBuilder, ir.Function]:
    m = ir.Module("t")
    f = ir.Function(m, ir.FunctionType(ir.VoidType(), [F32P]), "f")
    return m, ir.IRBuilder(f.append_basic_block("entry")), f


def test_vec_loop_emits_vector_body_and_scalar_tail():
    m, b, f = _fn()
    vec_loop(b, 0, 37, 16, lambda i, w: store(b, load(b, f.args[0], i, w, "x"), f.args[0], i,
                                              "y"), "copy")
    b.ret_void()
    text = str(m)
    assert "<16 x float>" in text and "<1 x float>" in text
    assert "copy.vec.header" in text and "copy.tail.header" in text
    # the vector loop stops at the last multiple of 16
    assert re.search(r'icmp slt i64 %"copy\.vec", 32', text)


def test_vec_loop_without_tail_when_divisible():
    m, b, _ = _fn()
    vec_loop(b, 0, 32, 16, lambda i, w: None, "n")
    b.ret_void()
    assert "n.tail" not in str(m)


def test_broadcast_plan_merges_contiguous_dims():
    assert broadcast_plan((2, 3, 4), [(2, 3, 4), (2, 3, 4)]) == ([24], [[1], [1]])
    dims, strides = broadcast_plan((2, 5, 4, 3), [(2, 5, 4, 3), (5, 1, 1)])
    assert dims == [2, 5, 12] and strides == [[60, 12, 1], [0, 1, 0]]


def test_pool_ir_uses_pthreads_and_condition_variables():
    text = str(threads.pool_module())
    for name in ("pthread_create", "pthread_join", "pthread_cond_wait",
                 "pthread_cond_broadcast", *threads.POOL_SYMBOLS):
        assert name in text
    assert "graphcnn_init_threads" not in text  # the C entry points are the AOT library's


def test_aot_pool_is_hidden_and_model_only_declares_it():
    aot = str(threads.pool_module(aot=True))
    for name in threads.POOL_SYMBOLS:
        assert 'define hidden' in aot and f'@"{name}"' in aot
    assert 'define i64 @"graphcnn_init_threads"' in aot
    m = ir.Module("model")
    threads.emit_pool(m)
    model = str(m)
    assert "pthread_create" not in model and 'declare void @"graphcnn_pool_for"' in model
