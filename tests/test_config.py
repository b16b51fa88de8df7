"""Bounded safe YAML: duplicate keys, alias bombs, nesting, size and Python tags are refused."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvalue.config import MAX_YAML_NODES, load_yaml, parse_yaml
from ipvalue.exceptions import SpecError

ALIAS_BOMB = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def test_plain_yaml_and_anchors_within_bounds_parse():
    assert parse_yaml("a: 1\nb: [x, y]\n") == {"a": 1, "b": ["x", "y"]}
    assert parse_yaml("base: &b {rate: 0.1}\nother: *b\n") == {"base": {"rate": 0.1}, "other": {"rate": 0.1}}
    assert parse_yaml("base: &b {rate: 0.1}\nother:\n  <<: *b\n  term: 5\n") == {"base": {"rate": 0.1}, "other": {"rate": 0.1, "term": 5}}
    assert parse_yaml("") is None


def test_duplicate_key_is_an_error_naming_key_and_lines():
    with pytest.raises(SpecError, match=r"app.yaml line 3: duplicate key 'requested_amount_rmb' \(first on line 1\)"):
        parse_yaml("requested_amount_rmb: 1000\nborrower: x\nrequested_amount_rmb: 99999999\n", where="app.yaml")
    with pytest.raises(SpecError, match="duplicate key 'x'"):
        parse_yaml("outer:\n  x: 1\n  x: 2\n")


def test_alias_bomb_is_refused():
    # 10**9 strings once expanded; the bound is checked on the node graph with shared nodes memoised,
    # so nothing is ever expanded (the file is 1 kB).
    assert len(ALIAS_BOMB) < 1000
    with pytest.raises(SpecError, match=f"expands to more than {MAX_YAML_NODES:,} values"):
        parse_yaml(ALIAS_BOMB)


def test_recursive_alias_is_refused():
    with pytest.raises(SpecError, match="recursive"):
        parse_yaml("a: &a [1, *a]\n")


def test_nesting_depth_and_size_are_bounded():
    with pytest.raises(SpecError, match="nests deeper than 32 levels"):
        parse_yaml("[" * 5000 + "]" * 5000)
    with pytest.raises(SpecError, match="at most 100 are accepted"):
        parse_yaml("a: " + "x" * 200, max_bytes=100)


@pytest.mark.parametrize(
    "text",
    [
        "x: !!python/object/apply:os.system ['echo pwned']\n",
        "!!python/name:os.system\n",
        "x: !custom 1\n",
    ],
)
def test_python_and_custom_tags_are_refused_with_the_line(text):
    with pytest.raises(SpecError, match=r"line 1: the tag .* is not allowed"):
        parse_yaml(text)


def test_invalid_yaml_and_non_mapping_file(tmp_path):
    with pytest.raises(SpecError, match="is not valid YAML"):
        parse_yaml("a: [1, 2\n")
    path = tmp_path / "m.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(SpecError, match="must hold a mapping at the top level. Got list"):
        load_yaml(path)
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_yaml(path)


def test_shipped_assumption_sets_still_load():
    for name in ("pledge-policy-cn", "statutory-terms", "fee-schedules", "ipc-sectors", "market-size", "risk-sharing"):
        content, origin = load_yaml(name)
        assert isinstance(content, dict) and origin == f"package:assumptions/{name}.yaml"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_gives_a_result_or_a_spec_error(text):
    try:
        parse_yaml(text)
    except SpecError:
        pass


def test_a_text_parsed_again_gives_an_independent_copy_and_a_refusal_names_each_file():
    from ipvalue.config import parse_yaml

    text = "rates: {low: 0.16, high: 0.27}\nbands: [1, 2]\n"
    first = parse_yaml(text)
    first["rates"]["low"] = 99
    first["bands"].append(3)
    assert parse_yaml(text) == {"rates": {"low": 0.16, "high": 0.27}, "bands": [1, 2]}  # the caller's change never reaches the next reader
    bad = "a: 1\na: 2\n"
    for where in ("first.yaml", "second.yaml"):
        with pytest.raises(SpecError, match=rf"^{where} line 2: duplicate key 'a'"):
            parse_yaml(bad, where=where)


def test_package_data_is_parsed_by_libyaml_with_the_same_result_and_checks():
    import copy
    import json
    from importlib import resources

    import ipvalue.config as config

    shipped = [f for folder in ("assumptions", "mappings") for f in (resources.files("ipvalue") / folder).iterdir() if f.name.endswith(".yaml")]
    assert len(shipped) > 15
    for f in shipped:
        text = f.read_bytes()
        config._PARSED.clear()  # each parser parses the text itself, not a cached result
        fast = copy.deepcopy(parse_yaml(text, where=f.name, package_data=True))
        config._PARSED.clear()
        assert fast == parse_yaml(text, where=f.name), f.name
    config._PARSED.clear()
    nested = "[" * 40 + "]" * 40  # deeper than the bound: only the C parser, which has none, reads it
    assert parse_yaml(nested, package_data=True) == json.loads(nested)
    config._PARSED.clear()
    with pytest.raises(SpecError, match="nests deeper than 32 levels"):
        parse_yaml(nested)
    for bad, says in (("a: 1\na: 2\n", "duplicate key 'a'"), ("a: !!python/object/apply:os.system [ls]\n", "is not allowed"), (ALIAS_BOMB, "expands to more than")):
        with pytest.raises(SpecError, match=says):
            parse_yaml(bad, package_data=True)
