"""`density` replaced `sparsity` as the name of the share of entries a sparse part keeps.

The old name said the opposite (it kept, not dropped, that share). It still
works everywhere, with a DeprecationWarning.
"""

from __future__ import annotations

import numpy as np
import pytest

import hsslin
from hsslin._cli import build_parser

RNG = np.random.default_rng(7)
W = RNG.standard_normal((24, 20))

BUILDERS = {
    "CSRMatrix": lambda **kw: hsslin.CSRMatrix.from_dense(W, **kw),
    "SparsePlusLowRank": lambda **kw: hsslin.SparsePlusLowRank.from_dense(W, rank=2, **kw),
    "SparsePlusHSS": lambda **kw: hsslin.SparsePlusHSS.from_dense(W, rank=2, leaf_size=8, **kw),
    "compress": lambda **kw: hsslin.compress(W, "sparse+svd", rank=2, **kw),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_old_name_warns_and_builds_the_same(name):
    new = BUILDERS[name](density=0.2)
    with pytest.warns(DeprecationWarning, match="density="):
        old = BUILDERS[name](sparsity=0.2)
    np.testing.assert_array_equal(old.to_dense(), new.to_dense())


@pytest.mark.parametrize("name", BUILDERS)
def test_both_names_is_a_type_error(name):
    with pytest.raises(TypeError, match="density"):
        BUILDERS[name](density=0.2, sparsity=0.2)


def test_required_density_is_named():
    with pytest.raises(TypeError, match="density"):
        hsslin.CSRMatrix.from_dense(W)
    with pytest.raises(TypeError, match="density"):
        hsslin.SparsePlusLowRank.from_dense(W, rank=2)


def test_default_density_of_sparse_plus_hss():
    A = hsslin.SparsePlusHSS.from_dense(W, rank=2, leaf_size=8)
    assert A.S.nnz == int(np.ceil(0.1 * W.size))
    assert A.meta["density"] == 0.1


@pytest.mark.parametrize("flag", ["--density", "--sparsity"])
def test_cli_takes_both_spellings(flag, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    argv = ["compress", str(tmp_path), "--out", str(tmp_path / "out"), flag, "0.2", "--rank", "2"]
    assert build_parser().parse_args(argv).density == 0.2
