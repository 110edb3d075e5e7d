from __future__ import annotations

import pytest

from graphcnn import hugepages
from graphcnn.hugepages import huge_page_advice, no_huge_page_advice


@pytest.fixture
def setter():
    """numpy's switch (it returns the setting it replaces); the caller's setting is restored."""
    switch = hugepages._setter()
    if switch is None:
        pytest.skip("this numpy has no huge-page switch (_set_madvise_hugepage)")
    original = switch(True)
    yield switch
    switch(original)


def test_advice_is_off_inside_and_the_callers_setting_comes_back(setter):
    with no_huge_page_advice():
        assert setter(False) is False  # off inside
    assert setter(True) is True  # restored on the way out
    with pytest.raises(RuntimeError), no_huge_page_advice():
        raise RuntimeError("an import that fails")
    assert setter(True) is True  # restored after an error too


def test_a_compiled_models_workspace_keeps_the_advice(setter):
    setter(False)
    with huge_page_advice(True):
        assert setter(True) is True
    assert setter(False) is False
