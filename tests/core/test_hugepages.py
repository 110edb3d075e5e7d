from __future__ import annotations

import pytest

from graphcnn import hugepages
from graphcnn.hugepages import no_huge_page_advice


def test_advice_is_off_inside_and_the_callers_setting_comes_back():
    setter = hugepages._setter()
    if setter is None:
        pytest.skip("this numpy has no huge-page switch (_set_madvise_hugepage)")
    original = setter(True)
    try:
        with no_huge_page_advice():
            assert setter(False) is False  # returns the setting it replaces: off inside
        assert setter(True) is True  # restored on the way out
        with pytest.raises(RuntimeError), no_huge_page_advice():
            raise RuntimeError("an import that fails")
        assert setter(True) is True  # restored after an error too
    finally:
        setter(original)
