"""Issue 13, security and messages: names as paths, redirects, file modes, markup, full disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recbench.core.errors import ConfigError
from recbench.core.names import check_name, path_component, within

# --- class 1: names are paths -------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "/abs", "-x", ".hidden", "a\x00b",
                                 "a b", "x" * 129, "amazon-x/../../y", "a\\b", "\u00e9t\u00e9"])
def test_check_name_rejects_what_could_be_a_path(bad):
    with pytest.raises(ConfigError, match="dataset name"):
        check_name(bad, "dataset name")


@pytest.mark.parametrize("good", ["mind", "amazon-beauty", "ml-1m", "a.b_c-1", "X" * 128, "0"])
def test_check_name_accepts_safe_names(good):
    assert check_name(good, "dataset name") == good


@pytest.mark.parametrize(("raw", "mapped"), [
    ("SASRec", "SASRec"), ("hf:ORG/NAME", "hf_ORG_NAME"), ("openai:gpt-4o", "openai_gpt-4o"),
    ("..", "_."), (".", "_"), ("", "_"), ("/abs/dir", "_abs_dir"), ("../../x", "_._.._x"),
])
def test_path_component_is_one_safe_component(raw, mapped, tmp_path):
    assert path_component(raw) == mapped
    assert within(tmp_path, path_component(raw)).parent == tmp_path


def test_within_refuses_escapes(tmp_path):
    assert within(tmp_path, "a", "b") == tmp_path / "a" / "b"
    for parts in [("..", "x"), ("/etc",), ("a", "../../x"), ()]:
        with pytest.raises(ConfigError, match="escapes"):
            within(tmp_path, *parts)


def test_within_refuses_a_symlinked_folder_but_allows_a_symlinked_leaf(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "planted")
    with pytest.raises(ConfigError, match="symbolic link"):
        within(root, "planted", "x")
    # A dataset folder the user linked to another disk is the user's choice.
    assert within(root, "planted") == root / "planted"


def test_within_accepts_a_root_behind_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    assert within(Path(tmp_path / "link"), "mind") == tmp_path / "link" / "mind"
