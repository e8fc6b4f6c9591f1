"""Writes the format fixtures in this folder with hsslin as it was on main at commit cf7eecb.

They pin the file format: tests/test_io.py loads every one with today's
hsslin and compares it with the dense matrices main saved beside them. The
files must stay as they are; to see how they were made, check that commit
out, build it (``pip install -e .``) and run ``python make_main_fixtures.py
<folder>`` from outside the source tree. The script prints the hsslin it
imported: an editable install of another checkout wins over PYTHONPATH.
"""

import os
import pickle
import sys

import numpy as np

import hsslin


def main(out):
    print("hsslin from", hsslin.__file__)
    x = (np.arange(24) + 0.5) / 24
    y = np.arange(19) / 19
    W64 = 1.0 / (x[:, None] - y[None, :] + 0.013)  # Cauchy-like, 24 x 19
    W32 = W64.astype(np.float32)
    objs = {
        "hss_f64": hsslin.HSSMatrix.from_dense(W64, tol=1e-6, leaf_size=6),
        "hss_f32": hsslin.HSSMatrix.from_dense(W32, tol=1e-4, leaf_size=6),
        "hodlr_f32": hsslin.HODLRMatrix.from_dense(W32, rank=3, leaf_size=6),
        "csr_f64": hsslin.CSRMatrix.from_dense(W64, sparsity=0.1),
        "lowrank_f32": hsslin.LowRankMatrix.from_dense(W32, rank=2),
        "sparse_svd_f64": hsslin.SparsePlusLowRank.from_dense(W64, sparsity=0.05, rank=2),
        "sparse_hodlr_rcm_f32": hsslin.SparsePlusHSS.from_dense(W32, sparsity=0.05, rank=3, leaf_size=6),
        "sparse_hss_f64": hsslin.SparsePlusHSS.from_dense(
            W64, sparsity=0.05, tol=1e-4, hierarchy="hss", permutation=None, leaf_size=6
        ),
    }
    dense = {}
    for name, op in objs.items():
        op.save(os.path.join(out, name + ".hsslin"))
        dense[name] = op.to_dense()
    np.savez(os.path.join(out, "main_dense.npz"), **dense)
    # The objects main could pickle (the others held a CSR part and could not).
    for name in ("hss_f64", "hodlr_f32", "lowrank_f32"):
        with open(os.path.join(out, name + ".pickle"), "wb") as f:
            pickle.dump(objs[name], f, protocol=4)


if __name__ == "__main__":
    main(sys.argv[1])
