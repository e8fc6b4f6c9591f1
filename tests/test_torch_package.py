"""The layout of the torch adapter (issue 10, item 4): public API, lazy torch import, dispatch by type."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import hsslin  # noqa: E402
import hsslin.torch as ht  # noqa: E402

# Every public name hsslin.torch had as a single module (hsslin/torch.py).
PUBLIC = """HSSLinear CompressionReport LayerReport compress_model save_compressed load_compressed
read_manifest compressed_layers find_targets describe_operator QKV_NAMES perplexity
embedding_fidelity sentence_embeddings minilm_path SAMPLE_SENTENCES CALIBRATION_SENTENCES
calibration_batches input_grams Perplexity EmbeddingFidelity FORMAT_VERSION MANIFEST
FACTORS_FILE""".split()
# Added since (issue 11): SmolLM2-135M and the licence texts, beside minilm_path; healing.
ADDED = """smollm2_path smollm2_folder load_smollm2 evaluation_text calibration_text causal_lm_batches
rounded_qkv heal healing_loss HealReport reference_outputs""".split()


def test_public_api_is_unchanged():
    for name in PUBLIC:
        assert hasattr(ht, name), name
    assert set(ht.__all__) == set(PUBLIC) | set(ADDED)
    assert ht.FORMAT_VERSION == 1 and ht.MANIFEST == "manifest.json"


def test_hsslin_and_its_cli_do_not_import_torch():
    code = (
        "import sys, hsslin, hsslin._cli as cli\n"
        "cli.build_parser()\n"
        "assert cli.main(['demo', '--kernel', '--n', '80', '--repeats', '1']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


class HODLRMatrix:
    """Not hsslin's: an operator type is known by identity, never by its name."""

    shape = (4, 4)
    dtype = np.dtype(np.float32)
    nbytes = 64


def test_dispatch_is_by_type_not_by_class_name():
    impostor = HODLRMatrix()
    with pytest.raises(TypeError, match="does not know operator type HODLRMatrix"):
        ht.describe_operator(impostor)
    with pytest.raises(TypeError, match="no trainable form"):
        ht.HSSLinear(torch.nn.Linear(4, 4), impostor, trainable=True)


def test_adapter_uses_only_public_operator_accessors():
    """No reaching into the C++ objects (``_impl``, ``_S``) or private products (``_apply``)."""
    folder = pathlib.Path(ht.__file__).parent
    private = re.compile(r"\._impl\b|\._S\b|\._apply\(|\b_HODLR\b|\b_HSS\b|_tree\b")
    for path in sorted(folder.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not private.search(line), f"{path.name}:{number}: {line.strip()}"


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 70),
    n=st.integers(1, 70),
    leaf=st.integers(1, 20),
    rank=st.integers(1, 5),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_hodlr_trainable_form_matches_its_operator(m, n, leaf, rank, dtype):
    """The trainable form splits each node where the C++ tree does (read from the factor shapes)."""
    W = np.random.default_rng(m * 100 + n).standard_normal((m, n)).astype(dtype)
    op = hsslin.HODLRMatrix.from_dense(W, rank=rank, leaf_size=leaf)
    layer = ht.HSSLinear(torch.nn.Linear(n, m).to(torch.float64), op, trainable=True)
    x = torch.randn(3, n, dtype=torch.float64)
    expected = x @ torch.from_numpy(op.to_dense().astype(np.float64)).T + layer.bias.detach()
    eps = float(np.finfo(dtype).eps)
    with torch.no_grad():
        got = layer(x)
    # same factors, another summation order: a few roundings per entry of a length-n sum
    scale = float(x.abs().sum(1).max()) * float(np.abs(op.to_dense()).max()) + 1.0
    assert float((got - expected).abs().max()) <= 4 * n * eps * scale
    back = layer.to_inference().get_operator()
    assert type(back) is hsslin.HODLRMatrix and back.dtype == op.dtype
    assert np.array_equal(back.to_dense(), op.to_dense())
    assert (back.levels, back.leaf_size, back.nbytes) == (op.levels, op.leaf_size, op.nbytes)
