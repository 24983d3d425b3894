"""String, text, ai.onnx.ml, optimizer, image and random ops of the native engine, against independent oracles.

- String ops, TfIdfVectorizer, LabelEncoder, ArrayFeatureExtractor, Binarizer
  and TreeEnsemble run as one-node models through
  ``edgeai.Session(device="native")`` and through ONNX Runtime's own kernels
  (RE2 for RegexFullMatch); hypothesis draws the strings, token rows, pools
  and skip counts.
- TreeEnsemble is also checked against scikit-learn: a fitted decision-tree
  forest is written as TreeEnsemble attributes and its predictions compared.
- Momentum, Adagrad and Adam are checked against ``torch.optim`` (SGD with
  momentum and Nesterov, Adagrad with lr decay, Adam with bias correction,
  weight decay as ``norm_coefficient``) over several steps.
- ImageDecoder decodes lossless encodings (PNG, BMP, TIFF, PPM, WebP lossless)
  back to the exact source pixels, grayscale within one level of the float64
  luma formula; undecodable bytes give an empty image.
- Bernoulli/RandomUniformLike (not claimed: see ``edgeai.ops.random_ops``)
  are reproducible per seed and have the right mean within 6 sigma.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeai
import edgeai.ops.ml
import edgeai.ops.strings
import edgeai.ops.training
from edgeai.errors import EdgeAIError, InferenceError
from edgeai.ops._base import OpContext, lookup

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ML = "ai.onnx.ml"
TRAINING = "ai.onnx.preview.training"


def one_node_model(
    op_type: str,
    feeds: dict[str, np.ndarray],
    n_outputs: int = 1,
    *,
    attrs: dict[str, Any] | None = None,
    domain: str = "",
    opset: int = 20,
    domain_opset: int = 1,
) -> bytes:
    from onnx import TypeProto, helper

    outs = [f"y{i}" for i in range(n_outputs)]
    inputs = [
        helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(np.dtype(object) if v.dtype.kind == "U" else v.dtype), v.shape
        )
        for name, v in feeds.items()
    ]
    node = helper.make_node(op_type, list(feeds), outs, domain=domain, **(attrs or {}))
    graph = helper.make_graph([node], "g", inputs, [helper.make_value_info(o, TypeProto()) for o in outs])
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, domain_opset))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model.SerializeToString()


def run_both(model: bytes, feeds: dict[str, np.ndarray]) -> tuple[list[Any], list[Any]]:
    """(native outputs through edgeai.Session, ONNX Runtime outputs)."""
    import onnxruntime as ort

    with edgeai.Session(model, device="native") as sess:
        native = list(sess.run(None, feeds))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    ref = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]).run(None, feeds)
    return native, ref


def assert_same(native: list[Any], ref: list[Any], rtol: float = 0.0, atol: float = 0.0) -> None:
    assert len(native) == len(ref)
    for got, want in zip(native, ref):
        want = np.asarray(want)
        assert got.shape == want.shape
        if want.dtype == object:
            assert got.dtype == object
            assert got.tolist() == want.tolist()
        else:
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def strings(values: list[str], shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr.reshape(shape if shape is not None else (len(values),))


def native_op(op_type: str, *inputs: Any, attrs: dict[str, Any], domain: str = "", opset: int = 20) -> tuple:
    cls = lookup(op_type, domain, opset)
    assert cls is not None, f"{op_type} is not registered at opset {opset}"
    return cls(OpContext(node_name="n", op_type=op_type, domain=domain, opset=opset, attrs=attrs)).run(*inputs)


# --------------------------------------------------------------------------- strings

# No tabs or newlines: with no delimiter ONNX Runtime splits on spaces only, the spec (and
# onnx.reference, and edgeai) on all whitespace; see test_string_split_all_whitespace
WORDS = st.text(alphabet=st.sampled_from(list("abAB é,;.-_ 日")), max_size=8)


@SETTINGS
@given(
    words=st.lists(WORDS.filter(bool), min_size=1, max_size=6),
    maxsplit=st.one_of(st.none(), st.integers(0, 3)),
    delim=st.sampled_from([None, "", ",", " ", ";.", "日"]),
)
def test_string_split_matches_onnxruntime(words: list[str], maxsplit: int | None, delim: str | None) -> None:
    x = strings(words, (len(words), 1))
    attrs: dict[str, Any] = {}
    if maxsplit is not None:
        attrs["maxsplit"] = maxsplit
    if delim is not None:
        attrs["delimiter"] = delim
    model = one_node_model("StringSplit", {"x": x}, 2, attrs=attrs)
    assert_same(*run_both(model, {"x": x}))


def test_string_split_all_whitespace_matches_onnx_reference() -> None:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    x = strings(["a\tb  c\n", "\t", " x ", ""])
    node = helper.make_node("StringSplit", ["x"], ["y", "n"], maxsplit=5)
    # ONNX Runtime: spaces only, and "" split on "," is 0 substrings; Python and onnx.reference: 1
    comma = native_op("StringSplit", strings(["", "a,"]), attrs={"delimiter": ","})
    assert comma[0].tolist() == [["", ""], ["a", ""]] and comma[1].tolist() == [1, 2]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", 8, [4])],
        [helper.make_tensor_value_info("y", 8, None), helper.make_tensor_value_info("n", 7, None)],
    )
    want = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])).run(None, {"x": x})
    got = native_op("StringSplit", x, attrs={"maxsplit": 5})
    assert got[0].tolist() == want[0].tolist() == [["a", "b", "c"], ["", "", ""], ["x", "", ""], ["", "", ""]]
    np.testing.assert_array_equal(got[1], want[1])


@SETTINGS
@given(a=st.lists(WORDS, min_size=1, max_size=4), b=WORDS)
def test_string_concat_matches_onnxruntime_with_broadcast(a: list[str], b: str) -> None:
    x, y = strings(a, (len(a), 1)), strings([b, b + "!"], (1, 2))
    assert_same(*run_both(one_node_model("StringConcat", {"x": x, "y": y}), {"x": x, "y": y}))


@pytest.mark.parametrize(
    ("pattern", "values"),
    [
        (r"[a-z]+@[a-z]+\.(com|org)", ["ann@site.com", "x@y.net", "@a.com", "bob@mail.org"]),
        (r"\d{3}-\d{4}", ["555-1234", "5555-123", "", "123-45678"]),
        (r"(?i)hello\s+world", ["HeLLo   world", "helloworld", "hello world!"]),
        (r"a.*z\z", ["abcz", "az\n", "a\nz"]),  # RE2's \z is rewritten to Python's \Z
        (r"\d+", ["123", "١٢٣", "12a"]),  # RE2's \d is ASCII; Python's matches Arabic-Indic digits
        (r"\w+\s\w+", ["ab c", "é x", "a\u00a0b"]),
        (r"a$\n?", ["a", "a\n"]),  # RE2's $ is the very end; Python's also before a final newline
        (r"(?<g>b)+", ["bb", "a"]),
        ("a{,2}x{2}y{1,}z{2", ["a{,2}xxyyz{2", "aaxxyz{2", "xxy"]),  # RE2: {,n} and {n are literal
        (r"[^\x00-\x7f]+", ["日本", "abc", "é"]),
        (r"", ["", "a"]),
    ],
)
def test_regex_full_match_matches_onnxruntime_re2(pattern: str, values: list[str]) -> None:
    x = strings(values)
    model = one_node_model("RegexFullMatch", {"x": x}, attrs={"pattern": pattern})
    assert_same(*run_both(model, {"x": x}))


def ort_session_fails(model: bytes) -> bool:
    import onnxruntime as ort

    try:
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    except Exception:
        return True
    return False


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"a(?=b)", r"a(?!b)", r"(?<=a)b", r"(?<!a)b", r"(?>a)", "a*+", r"a\Z", r"(?P=n)", "a{1001}"],
)
def test_regex_full_match_rejects_what_re2_rejects(pattern: str) -> None:
    x = strings(["a"])
    assert ort_session_fails(one_node_model("RegexFullMatch", {"x": x}, attrs={"pattern": pattern}))
    with pytest.raises(InferenceError, match="not a valid regular expression"):
        native_op("RegexFullMatch", x, attrs={"pattern": pattern})


def test_regex_full_match_rejects_what_python_cannot_run() -> None:
    for pattern in (r"\p{Greek}+", r"\pN", "(unclosed", "(?U)a+", "[[:^alpha:]]"):
        with pytest.raises(InferenceError, match="not a valid regular expression"):
            native_op("RegexFullMatch", strings(["a"]), attrs={"pattern": pattern})
    with pytest.raises(InferenceError, match="string tensor"):
        native_op("RegexFullMatch", np.array([1, 2]), attrs={"pattern": "a"})


RE2_ATOMS = [
    "a",
    "b",
    ".",
    r"\d",
    r"\w",
    r"\s",
    r"\D",
    r"\W",
    "[ab]",
    "[^a]",
    "[[:alpha:]]",
    "[[:digit:]_]",
    r"[\d.]",
    r"\.",
    "(a|b)",
    "é",
    r"\x{e9}",
    r"\141",
    r"\Qa.\E",
    "(?i:A)",
    "(b)",
]
RE2_TAIL = ["", r"\b", r"\B", "$", r"\z"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    atoms=st.lists(
        st.tuples(st.sampled_from(RE2_ATOMS), st.sampled_from(["", "*", "+", "?", "{1,2}", "{2,}", "{,2}", "*?"])),
        min_size=1,
        max_size=4,
    ),
    tail=st.sampled_from(RE2_TAIL),
    texts=st.lists(st.text(alphabet=st.sampled_from(list("ab1_ é.\nA٣\t")), max_size=5), min_size=4, max_size=4),
)
def test_regex_full_match_agrees_with_onnxruntime_re2(
    atoms: list[tuple[str, str]], tail: str, texts: list[str]
) -> None:
    # ASCII \d \w \s \b and POSIX classes, $ at the very end, RE2-only escapes: all as RE2 reads them
    pattern = "".join(a + q for a, q in atoms) + tail
    x = strings(texts)
    model = one_node_model("RegexFullMatch", {"x": x}, attrs={"pattern": pattern})
    assert_same(*run_both(model, {"x": x}))


@SETTINGS
@given(
    words=st.lists(
        st.sampled_from(["monday", "Monday", "MONDAY", "tuesday", "Édith", "straße", "x y"]), min_size=1, max_size=6
    ),
    action=st.sampled_from(["NONE", "LOWER", "UPPER"]),
    sensitive=st.booleans(),
    two_dim=st.booleans(),
)
def test_string_normalizer_matches_onnxruntime(words: list[str], action: str, sensitive: bool, two_dim: bool) -> None:
    x = strings(words, (1, len(words)) if two_dim else None)
    attrs = {
        "case_change_action": action,
        "is_case_sensitive": int(sensitive),
        "stopwords": ["monday", "x y"],
        "locale": "C.UTF-8",  # ORT's default en_US needs a locale package this machine may lack
    }
    model = one_node_model("StringNormalizer", {"x": x}, attrs=attrs, opset=10)
    native, ref = run_both(model, {"x": x})
    # ORT upper-cases through wide chars one by one: "ß" stays "ß"; Python's str.upper gives "SS"
    if action == "UPPER" and any("ß" in w for w in words):
        ref = [np.vectorize(lambda s: s.replace("ß", "SS"), otypes=[object])(np.asarray(ref[0]))]
    assert_same(native, ref)


# --------------------------------------------------------------------------- TfIdfVectorizer


@SETTINGS
@given(
    rows=st.lists(st.lists(st.integers(0, 4), min_size=6, max_size=6), min_size=1, max_size=3),
    max_skip=st.integers(0, 3),
    grams=st.sampled_from([(1, 1), (1, 2), (2, 2), (1, 3), (2, 3)]),
    mode=st.sampled_from(["TF", "IDF", "TFIDF"]),
    one_dim=st.booleans(),
)
def test_tfidf_matches_onnxruntime(
    rows: list[list[int]], max_skip: int, grams: tuple[int, int], mode: str, one_dim: bool
) -> None:
    # pool: unigrams 0..3, bigrams (0,1) (1,2) (2,2) (4,0), trigrams (0,1,2) (3,3,3)
    pool = [0, 1, 2, 3] + [0, 1, 1, 2, 2, 2, 4, 0] + [0, 1, 2, 3, 3, 3]
    n_ngrams = 4 + 4 + 2
    indexes = list(np.random.default_rng(len(rows)).permutation(n_ngrams))
    attrs = {
        "mode": mode,
        "min_gram_length": grams[0],
        "max_gram_length": grams[1],
        "max_skip_count": max_skip,
        "ngram_counts": [0, 4, 12],
        "ngram_indexes": [int(i) for i in indexes],
        "pool_int64s": pool,
        "weights": [0.5 + i for i in range(n_ngrams)],
    }
    x = np.array(rows[:1][0] if one_dim else rows, np.int64)
    model = one_node_model("TfIdfVectorizer", {"x": x}, attrs=attrs, opset=9)
    assert_same(*run_both(model, {"x": x}), rtol=1e-6)


@SETTINGS
@given(
    rows=st.lists(st.lists(st.sampled_from(["a", "b", "c", "zz"]), min_size=5, max_size=5), min_size=1, max_size=3),
    grams=st.lists(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4), min_size=1, max_size=8),
    max_skip=st.integers(0, 3),
    min_n=st.integers(1, 4),
)
def test_tfidf_vectorized_counts_match_the_tuple_loop(
    rows: list[list[str]], grams: list[list[str]], max_skip: int, min_n: int
) -> None:
    from edgeai.ops.strings import _GramTable, tfidf_counts

    ngrams = {tuple(g): i for i, g in enumerate(dict.fromkeys(tuple(g) for g in grams))}
    table = _GramTable(ngrams, 4)
    arr = strings([t for r in rows for t in r], (len(rows), 5))
    want = tfidf_counts(arr.tolist(), ngrams, len(ngrams), min_n, 4, max_skip)
    np.testing.assert_array_equal(table.counts(table.ids(arr), len(ngrams), min_n, 4, max_skip), want)


def test_tfidf_strings_match_onnxruntime() -> None:
    x = strings(["the", "cat", "sat", "the", "cat", "ran", "a", "cat"], (2, 4))
    attrs = {
        "mode": "TFIDF",
        "min_gram_length": 1,
        "max_gram_length": 2,
        "max_skip_count": 1,
        "ngram_counts": [0, 3],
        "ngram_indexes": [0, 1, 2, 3, 4],
        "pool_strings": ["the", "cat", "ran", "the", "cat", "cat", "sat"],
        "weights": [1.0, 2.0, 3.0, 4.0, 5.0],
    }
    model = one_node_model("TfIdfVectorizer", {"x": x}, attrs=attrs, opset=9)
    assert_same(*run_both(model, {"x": x}), rtol=1e-6)


def test_tfidf_bad_attributes_raise() -> None:
    base = {"mode": "TF", "min_gram_length": 1, "max_gram_length": 1, "ngram_counts": [0], "ngram_indexes": [0]}
    with pytest.raises(InferenceError, match="exactly one of pool_strings and pool_int64s"):
        native_op("TfIdfVectorizer", np.array([1]), attrs=base, opset=9)
    with pytest.raises(InferenceError, match="mode must be"):
        native_op("TfIdfVectorizer", np.array([1]), attrs={**base, "mode": "BM25", "pool_int64s": [1]}, opset=9)
    with pytest.raises(InferenceError, match="twice"):
        dup = {**base, "ngram_indexes": [0, 1], "pool_int64s": [4, 4]}
        native_op("TfIdfVectorizer", np.array([1]), attrs=dup, opset=9)
    with pytest.raises(InferenceError, match="int32/int64"):
        native_op("TfIdfVectorizer", np.array([1.0]), attrs={**base, "pool_int64s": [1]}, opset=9)


# --------------------------------------------------------------------------- ai.onnx.ml


@pytest.mark.parametrize(
    ("attrs", "x"),
    [
        ({"keys_strings": ["a", "b", "c"], "values_int64s": [1, 2, 3], "default_int64": 42}, strings(["a", "z", "c"])),
        ({"keys_int64s": [1, 2, 3], "values_strings": ["x", "y", "z"]}, np.array([[3, 1], [7, 2]], np.int64)),
        ({"keys_floats": [0.5, float("nan")], "values_floats": [10.0, 20.0]}, np.array([0.5, np.nan, 1.0], np.float32)),
        ({"keys_int64s": [1, 2], "values_floats": [5.0, 2.0], "default_float": 7.5}, np.array([1, 2, 3])),
    ],
)
@pytest.mark.parametrize("version", [2, 4])
def test_label_encoder_matches_onnxruntime(attrs: dict[str, Any], x: np.ndarray, version: int) -> None:
    model = one_node_model("LabelEncoder", {"x": x}, attrs=attrs, domain=ML, domain_opset=version)
    assert_same(*run_both(model, {"x": x}))


def test_label_encoder_int16_keys_match_onnx_reference() -> None:
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    attrs = {
        "keys_tensor": numpy_helper.from_array(np.array([-3, 0, 9], np.int16)),
        "values_tensor": numpy_helper.from_array(np.array([1.5, 2.5, 3.5], np.float32)),
        "default_tensor": numpy_helper.from_array(np.array([-7.0], np.float32)),
    }
    x = np.array([[9, 1], [-3, 0]], np.int16)
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain=ML, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", 5, x.shape)], [helper.make_tensor_value_info("y", 1, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(ML, 4)])
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = native_op(
        "LabelEncoder", x, attrs={k: numpy_helper.to_array(v) for k, v in attrs.items()}, domain=ML, opset=4
    )[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.array([[3.5, -7.0], [1.5, 2.5]], np.float32))


def test_label_encoder_tensor_attributes_match_onnxruntime() -> None:
    from onnx import numpy_helper

    attrs = {
        "keys_tensor": numpy_helper.from_array(np.array([3, 5, 7], np.int64)),
        "values_tensor": numpy_helper.from_array(np.array([0.25, 0.5, 0.75])),
        "default_tensor": numpy_helper.from_array(np.array([-9.0])),
    }
    x = np.array([[5, 6], [7, 3]], np.int64)
    model = one_node_model("LabelEncoder", {"x": x}, attrs=attrs, domain=ML, domain_opset=4)
    assert_same(*run_both(model, {"x": x}))


def test_label_encoder_repeated_key_last_wins_as_the_spec_says() -> None:
    # ONNX Runtime keeps the first value of a repeated key; the specification says the last
    attrs = {"keys_int64s": [1, 1, 2], "values_floats": [1.0, 5.0, 2.0], "default_float": 7.5}
    out = native_op("LabelEncoder", np.array([1, 2, 3]), attrs=attrs, domain=ML, opset=4)[0]
    np.testing.assert_array_equal(out, np.array([5.0, 2.0, 7.5], np.float32))
    assert out.dtype == np.float32


def test_label_encoder_errors() -> None:
    with pytest.raises(InferenceError, match="exactly one of"):
        native_op("LabelEncoder", np.array([1]), attrs={"keys_int64s": [1]}, domain=ML, opset=4)
    with pytest.raises(InferenceError, match="does not match the keys"):
        native_op("LabelEncoder", np.array([1.0]), attrs={"keys_int64s": [1], "values_int64s": [2]}, domain=ML, opset=4)


@SETTINGS
@given(data=st.data())
def test_array_feature_extractor_and_binarizer_match_onnxruntime(data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, 3))
    x = np.random.default_rng(rows).standard_normal((rows, 5)).astype(np.float32)
    idx = np.array(data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=4)), np.int64)
    model = one_node_model("ArrayFeatureExtractor", {"x": x, "i": idx}, domain=ML)
    assert_same(*run_both(model, {"x": x, "i": idx}))
    thr = data.draw(st.floats(-1, 1))
    model = one_node_model("Binarizer", {"x": x}, attrs={"threshold": thr}, domain=ML)
    assert_same(*run_both(model, {"x": x}))


def test_array_feature_extractor_out_of_range() -> None:
    with pytest.raises(InferenceError, match=r"indices must be in \[0, 2\)"):
        native_op("ArrayFeatureExtractor", np.zeros((1, 2)), np.array([2]), attrs={}, domain=ML, opset=1)


def forest_attrs(trees: list[Any], n_targets: int) -> dict[str, Any]:
    """TreeEnsemble-5 attributes for fitted sklearn trees (<= splits, left = true branch)."""
    from onnx import numpy_helper

    assert n_targets == 1, "this helper writes regression trees with one target"
    feat: list[int] = []
    split: list[float] = []
    true_id: list[int] = []
    false_id: list[int] = []
    true_leaf: list[int] = []
    false_leaf: list[int] = []
    roots: list[int] = []
    leaf_t: list[int] = []
    leaf_w: list[float] = []
    for est in trees:
        t = est.tree_
        leaf_of: dict[int, int] = {}
        for i in range(t.node_count):
            if t.children_left[i] == -1:
                leaf_of[i] = len(leaf_w)
                leaf_t.append(0)
                leaf_w.append(float(t.value[i].reshape(-1)[0]))
        internal = [i for i in range(t.node_count) if t.children_left[i] != -1]
        node_of = {i: len(feat) + j for j, i in enumerate(internal)}
        roots.append(node_of[0])
        for i in internal:
            left, right = int(t.children_left[i]), int(t.children_right[i])
            feat.append(int(t.feature[i]))
            split.append(float(t.threshold[i]))
            true_leaf.append(int(left in leaf_of))
            true_id.append(leaf_of[left] if left in leaf_of else node_of[left])
            false_leaf.append(int(right in leaf_of))
            false_id.append(leaf_of[right] if right in leaf_of else node_of[right])
    return {
        "n_targets": n_targets,
        "nodes_featureids": feat,
        "nodes_splits": numpy_helper.from_array(np.array(split, np.float64)),
        "nodes_modes": numpy_helper.from_array(np.zeros(len(feat), np.uint8)),
        "nodes_truenodeids": true_id,
        "nodes_falsenodeids": false_id,
        "nodes_trueleafs": true_leaf,
        "nodes_falseleafs": false_leaf,
        "tree_roots": roots,
        "leaf_targetids": leaf_t,
        "leaf_weights": numpy_helper.from_array(np.array(leaf_w, np.float64)),
        "aggregate_function": 0,
    }


def test_tree_ensemble_matches_sklearn_random_forest_and_onnxruntime() -> None:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    forest = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(x, y)
    attrs = forest_attrs(forest.estimators_, 1)
    xq = rng.standard_normal((20, 4))
    model = one_node_model("TreeEnsemble", {"x": xq}, attrs=attrs, domain=ML, domain_opset=5, opset=21)
    native, ref = run_both(model, {"x": xq})
    np.testing.assert_allclose(native[0][:, 0], forest.predict(xq), rtol=1e-12)
    assert_same(native, ref, rtol=1e-12)


def _mixed_forest(aggregate: int, transform: int) -> dict[str, Any]:
    from onnx import numpy_helper

    # two trees, two targets; tree 0 uses every comparison mode along one path, tree 1 set membership
    return {
        "n_targets": 2,
        "nodes_featureids": [0, 1, 0, 1, 0, 2, 2],
        "nodes_splits": numpy_helper.from_array(np.array([0.5, -0.25, 0.0, 1.0, 0.3, 0.0, 0.0], np.float32)),
        "nodes_modes": numpy_helper.from_array(np.array([0, 1, 2, 3, 4, 5, 6], np.uint8)),
        "nodes_truenodeids": [1, 2, 3, 4, 5, 0, 2],
        "nodes_falsenodeids": [0, 1, 2, 3, 4, 1, 3],
        "nodes_trueleafs": [0, 0, 0, 0, 0, 1, 1],
        "nodes_falseleafs": [1, 1, 1, 1, 1, 1, 1],
        "nodes_missing_value_tracks_true": [1, 0, 0, 0, 0, 0, 0],
        "membership_values": numpy_helper.from_array(np.array([1.0, 2.0, np.nan], np.float32)),
        "tree_roots": [0, 6],
        "leaf_targetids": [0, 1, 0, 1, 0, 1, 0, 1],
        "leaf_weights": numpy_helper.from_array(np.array([0.3, -1.2, 2.0, 0.7, -0.4, 1.5, 0.9, 0.1], np.float32)),
        "aggregate_function": aggregate,
        "post_transform": transform,
    }


def _forest_input(seed: int) -> np.ndarray:
    values = np.array([-1.0, -0.25, 0.0, 0.3, 0.5, 1.0, 2.0, np.nan], np.float32)
    return np.random.default_rng(seed).choice(values, size=(40, 3))


@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
def test_tree_ensemble_modes_and_aggregates_match_onnxruntime(aggregate: int) -> None:
    x = _forest_input(aggregate)
    model = one_node_model(
        "TreeEnsemble", {"x": x}, attrs=_mixed_forest(aggregate, 0), domain=ML, domain_opset=5, opset=21
    )
    assert_same(*run_both(model, {"x": x}), rtol=1e-6, atol=1e-7)


def _spec_transform(scores: np.ndarray, transform: int) -> np.ndarray:
    """The post transforms as the ai.onnx.ml specification defines them, row by row in float64."""
    torch = pytest.importorskip("torch")
    out = np.empty_like(scores)
    for i, row in enumerate(scores.astype(np.float64)):
        if transform == 1:
            out[i] = np.exp(row) / np.exp(row).sum()
        elif transform == 2:
            out[i] = [1 / (1 + np.exp(-v)) for v in row]
        elif transform == 3:
            nz = [v for v in row if v != 0]
            total = sum(np.exp(v) for v in nz)
            out[i] = [np.exp(v) / total if v != 0 else 0.0 for v in row]
        else:
            out[i] = np.sqrt(2) * torch.erfinv(torch.tensor(2 * row - 1)).numpy()
    return out


@pytest.mark.parametrize("transform", [1, 2, 3, 4])
def test_tree_ensemble_post_transforms_follow_the_spec(transform: int) -> None:
    # Oracle: ONNX Runtime's raw scores (NONE), transformed by the spec's formulas. ORT's own
    # transforms are not used: it reads 1 as LOGISTIC and 2 as SOFTMAX (its internal enum
    # order), the reverse of the TreeEnsemble-5 specification (SOFTMAX=1, LOGISTIC=2).
    import onnxruntime as ort

    x = _forest_input(10 + transform)
    raw_model = one_node_model("TreeEnsemble", {"x": x}, attrs=_mixed_forest(1, 0), domain=ML, domain_opset=5, opset=21)
    raw = ort.InferenceSession(raw_model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    if transform == 4:
        raw = 1 / (1 + np.exp(-raw))  # probit needs scores in (0, 1)
        got = edgeai.ops.ml.post_transform(raw.astype(np.float64), "PROBIT")
    else:
        model = one_node_model(
            "TreeEnsemble", {"x": x}, attrs=_mixed_forest(1, transform), domain=ML, domain_opset=5, opset=21
        )
        with edgeai.Session(model, device="native") as sess:
            got = sess.run(None, {"x": x})[0]
        assert got.dtype == np.float32
    np.testing.assert_allclose(got, _spec_transform(raw, transform), rtol=1e-6, atol=1e-7)


def test_tree_ensemble_member_nodes_need_sets() -> None:
    from onnx import numpy_helper

    attrs = {
        "nodes_featureids": [0],
        "nodes_splits": numpy_helper.from_array(np.array([0.0], np.float32)),
        "nodes_modes": numpy_helper.from_array(np.array([6], np.uint8)),
        "nodes_truenodeids": [0],
        "nodes_falsenodeids": [1],
        "nodes_trueleafs": [1],
        "nodes_falseleafs": [1],
        "tree_roots": [0],
        "leaf_targetids": [0, 0],
        "leaf_weights": numpy_helper.from_array(np.array([1.0, 2.0], np.float32)),
    }
    from onnx.numpy_helper import to_array

    plain = {k: (to_array(v) if hasattr(v, "data_type") else v) for k, v in attrs.items()}
    with pytest.raises(InferenceError, match="membership_values"):
        native_op("TreeEnsemble", np.zeros((1, 1), np.float32), attrs=plain, domain=ML, opset=5)
    cyclic = {**plain, "nodes_modes": np.array([0], np.uint8), "nodes_falseleafs": [0], "nodes_falsenodeids": [0]}
    with pytest.raises(InferenceError, match="cycle"):
        native_op("TreeEnsemble", np.ones((1, 1), np.float32), attrs=cyclic, domain=ML, opset=5)


# --------------------------------------------------------------------------- optimizers vs torch.optim


def _run_optimizer(op_type: str, attrs: dict[str, Any], r: float, t: int, *tensors: np.ndarray) -> tuple:
    return native_op(op_type, np.float32(r), np.int64(t), *tensors, attrs=attrs, domain=TRAINING, opset=1)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_matches_torch_sgd(nesterov: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(4)]
    lr, mu, wd = 0.05, 0.9, 0.01
    p = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=mu, dampening=0.0, weight_decay=wd, nesterov=nesterov)
    x, v = x0.copy(), np.zeros_like(x0)
    attrs = {"alpha": mu, "beta": 1.0, "norm_coefficient": wd, "mode": "nesterov" if nesterov else "standard"}
    for t, g in enumerate(grads):
        p.grad = torch.tensor(g)
        opt.step()
        x, v = _run_optimizer("Momentum", attrs, lr, t, x, g, v)
    # attributes are float32 in ONNX: alpha/wd round there, so compare at float32 precision
    np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_adagrad_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(4)]
    lr, decay, eps, wd = 0.1, 0.5, 1e-3, 0.02
    p = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.Adagrad([p], lr=lr, lr_decay=decay, eps=eps, weight_decay=wd)
    x, h = x0.copy(), np.zeros_like(x0)
    attrs = {"decay_factor": decay, "epsilon": eps, "norm_coefficient": wd}
    for t, g in enumerate(grads):
        p.grad = torch.tensor(g)
        opt.step()
        x, h = _run_optimizer("Adagrad", attrs, lr, t, x, g, h)
    np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_adam_two_tensors_match_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    xs0 = [rng.standard_normal(5), rng.standard_normal((2, 2))]
    lr, b1, b2 = 0.01, 0.8, 0.95
    params = [torch.tensor(a, requires_grad=True) for a in xs0]
    # torch adds eps after the bias correction, ONNX before: with eps = 0 both are the same rule
    opt = torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=0.0)
    xs, vs, hs = [a.copy() for a in xs0], [np.zeros_like(a) for a in xs0], [np.zeros_like(a) for a in xs0]
    attrs = {"alpha": b1, "beta": b2, "epsilon": 0.0}
    for t in range(1, 5):
        gs = [rng.standard_normal(a.shape) for a in xs0]
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        opt.step()
        out = _run_optimizer("Adam", attrs, lr, t, *xs, *gs, *vs, *hs)
        xs, vs, hs = list(out[0:2]), list(out[2:4]), list(out[4:6])
    for x, p in zip(xs, params):
        np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_adam_epsilon_and_post_decay_match_onnx_reference() -> None:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(4)
    feeds = {
        "R": np.array(0.1, np.float32),
        "T": np.array(3, np.int64),
        "X": rng.standard_normal(4).astype(np.float32),
        "G": rng.standard_normal(4).astype(np.float32),
        "V": rng.standard_normal(4).astype(np.float32),
        "H": rng.random(4).astype(np.float32),
    }
    attrs = {"alpha": 0.85, "beta": 0.9, "epsilon": 0.01, "norm_coefficient": 0.1, "norm_coefficient_post": 0.05}
    node = helper.make_node("Adam", list(feeds), ["X2", "V2", "H2"], domain=TRAINING, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, 0, None) for o in ("X2", "V2", "H2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(TRAINING, 1)])
    want = ReferenceEvaluator(model).run(None, feeds)
    got = native_op("Adam", *feeds.values(), attrs=attrs, domain=TRAINING, opset=1)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_optimizer_input_errors() -> None:
    with pytest.raises(InferenceError, match="per optimized tensor"):
        _run_optimizer("Adagrad", {}, 0.1, 0, np.zeros(2), np.zeros(2))
    with pytest.raises(InferenceError, match="required attribute"):
        native_op("Momentum", attrs={"alpha": 0.9}, domain=TRAINING, opset=1)
    with pytest.raises(InferenceError, match="share one float dtype"):
        _run_optimizer("Adagrad", {}, 0.1, 0, np.zeros(2), np.zeros(2, np.float32), np.zeros(2))


# --------------------------------------------------------------------------- ImageDecoder


def _encode(pixels: np.ndarray, fmt: str, **kw: Any) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **kw)
    return np.frombuffer(buf.getvalue(), np.uint8)


@pytest.mark.parametrize(
    ("fmt", "kw"), [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("PPM", {}), ("WEBP", {"lossless": True})]
)
def test_image_decoder_lossless_formats_give_the_source_pixels(fmt: str, kw: dict[str, Any]) -> None:
    pytest.importorskip("PIL")
    import edgeai.ops.image

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    data = _encode(pixels, fmt, **kw)
    model = one_node_model("ImageDecoder", {"x": data})
    with edgeai.Session(model, device="native") as sess:
        (rgb,) = sess.run(None, {"x": data})
    np.testing.assert_array_equal(rgb, pixels)
    bgr = native_op("ImageDecoder", data, attrs={"pixel_format": "BGR"})[0]
    np.testing.assert_array_equal(bgr, pixels[:, :, ::-1])
    gray = native_op("ImageDecoder", data, attrs={"pixel_format": "Grayscale"})[0]
    luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert gray.shape == (7, 9, 1) and gray.dtype == np.uint8
    assert np.abs(gray[:, :, 0].astype(np.float64) - luma).max() <= 1.0


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "I;16"])
def test_image_decoder_other_pixel_modes_become_rgb(mode: str) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    import edgeai.ops.image  # noqa: F401

    rng = np.random.default_rng(6)
    rgba = rng.integers(0, 256, (5, 4, 4), dtype=np.uint8)
    source = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        source = source.convert("RGB").quantize(colors=16)
    elif mode == "L":
        source = source.convert("L")
    elif mode == "I;16":
        source = Image.fromarray(rgba[:, :, 0].astype(np.uint16) * 256 + 3)  # high byte v; Pillow picks I;16
    buf = io.BytesIO()
    source.save(buf, format="PNG")
    rgb = native_op("ImageDecoder", np.frombuffer(buf.getvalue(), np.uint8), attrs={})[0]
    assert rgb.shape == (5, 4, 3) and rgb.dtype == np.uint8
    if mode == "RGBA":  # alpha dropped
        np.testing.assert_array_equal(rgb, rgba[:, :, :3])
    elif mode == "P":  # the palette's colours
        np.testing.assert_array_equal(rgb, np.asarray(source.convert("RGB")))
    elif mode == "L":  # gray replicated
        np.testing.assert_array_equal(rgb, np.repeat(np.asarray(source)[:, :, None], 3, axis=2))
    else:  # 16-bit gray: the high byte, replicated
        assert source.mode == "I;16"
        np.testing.assert_array_equal(rgb, np.repeat(rgba[:, :, :1], 3, axis=2))


def test_image_decoder_bad_bytes_give_an_empty_image_and_bad_input_raises() -> None:
    pytest.importorskip("PIL")
    import edgeai.ops.image  # noqa: F401

    out = native_op("ImageDecoder", np.frombuffer(b"\x89PNG garbage", np.uint8), attrs={})[0]
    assert out.shape == (0, 0, 3) and out.dtype == np.uint8
    with pytest.raises(InferenceError, match="1-D uint8"):
        native_op("ImageDecoder", np.zeros((2, 2), np.uint8), attrs={})
    with pytest.raises(InferenceError, match="pixel_format"):
        native_op("ImageDecoder", np.zeros(2, np.uint8), attrs={"pixel_format": "CMYK"})


# --------------------------------------------------------------------------- random ops (not claimed)


def test_random_ops_are_not_claimed() -> None:
    edgeai.ops.load_all()
    assert lookup("Bernoulli", "", 22) is None
    assert lookup("RandomUniformLike", "", 22) is None


def test_bernoulli_is_reproducible_per_seed_and_has_the_right_mean() -> None:
    from edgeai.ops.random_ops import Bernoulli

    def make(seed: float | None, **attrs: Any) -> Bernoulli:
        a = dict(attrs) if seed is None else {"seed": seed, **attrs}
        return Bernoulli(OpContext(node_name="b", op_type="Bernoulli", opset=22, attrs=a))

    p = np.linspace(0.0, 1.0, 20_001)
    first, second = make(7.0).run(p)[0], make(7.0).run(p)[0]
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, make(8.0).run(p)[0])
    assert set(np.unique(first).tolist()) <= {0.0, 1.0} and first.dtype == np.float64
    assert first[0] == 0.0 and first[-1] == 1.0
    n = p.size
    assert abs(first.sum() - p.sum()) < 6 * np.sqrt((p * (1 - p)).sum())
    flags = make(None, dtype=9).run(np.full(n, 0.3, np.float32))[0]
    assert flags.dtype == np.bool_ and abs(flags.mean() - 0.3) < 6 * np.sqrt(0.21 / n)
    with pytest.raises(InferenceError, match=r"\[0, 1\]"):
        make(1.0).run(np.array([1.5]))


def test_random_uniform_like_range_dtype_and_seed() -> None:
    from edgeai.ops.random_ops import RandomUniformLike

    def make(**attrs: Any) -> RandomUniformLike:
        return RandomUniformLike(OpContext(node_name="u", op_type="RandomUniformLike", opset=22, attrs=attrs))

    like = np.zeros((100, 100), np.float32)
    a = make(low=-2.0, high=3.0, seed=1.0).run(like)[0]
    np.testing.assert_array_equal(a, make(low=-2.0, high=3.0, seed=1.0).run(like)[0])
    assert a.dtype == np.float32 and a.shape == like.shape
    assert a.min() >= -2.0 and a.max() < 3.0
    assert abs(a.mean() - 0.5) < 6 * 5 / np.sqrt(12 * a.size)
    assert make(dtype=11).run(np.zeros(3, np.int64))[0].dtype == np.float64
    with pytest.raises(InferenceError, match="dtype"):
        make().run(np.zeros(3, np.int64))


def test_numpy_str_and_stringdtype_inputs_are_string_tensors() -> None:
    for dtype in (np.str_, np.dtypes.StringDType()):
        x = np.array(["a b", "c"], dtype=dtype)
        y, n = native_op("StringSplit", x, attrs={})
        assert y.dtype == object and y.tolist() == [["a", "b"], ["c", ""]] and n.tolist() == [2, 1]
        out = native_op("LabelEncoder", x, attrs={"keys_strings": ["c"], "values_int64s": [3]}, domain=ML, opset=4)
        assert out[0].tolist() == [-1, 3]


def test_errors_are_edgeai_errors() -> None:
    with pytest.raises(EdgeAIError):
        native_op("StringSplit", np.array([1.0]), attrs={})
