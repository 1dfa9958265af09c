"""Config loading: YAML + dotted overrides, validated once, with one-line errors naming the key."""

import pytest

from minazr.driver.config import Config, ConfigError, docs_markdown, load_config, save_config


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_yaml_and_overrides(tmp_path):
    assert load_config() == Config()
    path = write(tmp_path, "learner:\n  lr: 1e-5\nexecutor:\n  workers: 3\n")
    cfg = load_config(path, ["learner.lr=2e-6", "rollout.num_workers=2", "model.name=/tmp/m"])
    assert cfg.learner.lr == 2e-6 and isinstance(cfg.learner.lr, float)
    assert cfg.executor.workers == 3 and cfg.rollout.num_workers == 2 and cfg.model.name == "/tmp/m"
    assert load_config(path).learner.lr == 1e-5  # YAML reads 1e-5 as text; a float field accepts it


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


@pytest.mark.parametrize("text,overrides,message", [
    ("learner:\n  lrr: 1\n", [], "learner.lrr: unknown key"),
    ("lerner:\n  lr: 1\n", [], "lerner: unknown key"),
    ("", ["learner.lr=abc"], "learner.lr: expected a number, got 'abc'"),
    ("", ["rollout.num_workers=1.5"], "rollout.num_workers: expected an integer, got 1.5"),
    ("", ["rollout.num_workers=true"], "rollout.num_workers: expected an integer, got True"),
    ("", ["rollout.num_workers=0"], "rollout.num_workers: 0 is below the minimum 1"),
    ("", ["learner.lr=-1"], "learner.lr: -1.0 is below the minimum 0.0"),
    ("", ["executor.determinism_runs=3"], "executor.determinism_runs: 3 is above the maximum 2"),
    ("", ["model.name=3"], "model.name: expected a string, got 3"),
    ("", ["learner=3"], "learner: expected a mapping"),
    ("", ["learner.lr"], "overrides look like section.key=value"),
    ("", ["learner..lr=1"], "overrides look like section.key=value"),
    ("learner: [1, 2]\n", [], "learner: expected a mapping"),
    ("- 1\n", [], "expected a mapping of sections"),
    ("learner: {lr: 1\n", [], "not valid YAML"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["learner.lr=3e-6", "run.seed=7"])
    path = save_config(cfg, tmp_path / "run")
    assert path == tmp_path / "run" / "config.yaml"
    assert load_config(path) == cfg


def test_docs_cover_every_field():
    import dataclasses

    docs = docs_markdown()
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.type):
            assert f"`{section.name}.{f.name}`" in docs


def test_configuration_page_is_the_generated_reference():
    """docs/configuration.md is `minazr config --docs` verbatim, and the README links it."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    page = root.joinpath("docs", "configuration.md").read_text()
    assert page == docs_markdown() + "\n", "regenerate: .venv/bin/minazr config --docs > docs/configuration.md"
    assert "(docs/configuration.md)" in root.joinpath("README.md").read_text()
    for section in Config.__pydantic_fields__:
        assert f"| `{section}." in page, section


@pytest.mark.parametrize("text,overrides,message", [
    ("selfplay:\n  tasks: [math, foo]\n", [], "selfplay.tasks[1]: 'foo' is not one of deduction, abduction"),
    ("", ["learner.freeze=[embed_tokens, 1]"], "learner.freeze[1]: expected a string, got 1"),
    ("", ["rollout.enforce_eager=1"], "rollout.enforce_eager: expected true or false, got 1"),
    ("", ["rewards.solve_wrong=yes"], "rewards.solve_wrong: expected a number, got True"),  # YAML: yes is true
    ("", ["learner.lr=nan"], "learner.lr: expected a finite number, got nan"),
    ("", ["rewards.solve_wrong=.inf"], "rewards.solve_wrong: expected a finite number, got inf"),
    # every unknown key comes before any other error: the outermost, then the first by name
    ("rollout:\n  zz: 1\n  num_workers: 0\n  aa: 2\n", [], "rollout.aa: unknown key (known: num_workers, dtype"),
    ("rollout:\n  zz: 1\n", ["zz.a=1"], "zz: unknown key"),
])
def test_pydantic_errors_are_one_line_naming_the_key(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_sections_are_validated_dataclasses():
    import copy
    import dataclasses
    import pickle

    from minazr.driver.config import LearnerConfig

    cfg = load_config(None, ["learner.lr=1", "rewards.solve_wrong=-2", "selfplay.tasks=[math]"])
    assert cfg.learner.lr == 1.0 and isinstance(cfg.learner.lr, float) and cfg.rewards.solve_wrong == -2.0
    assert pickle.loads(pickle.dumps(cfg)) == cfg == copy.deepcopy(cfg)  # configs travel to Ray actors
    assert dataclasses.replace(cfg.train, steps=3).steps == 3 and cfg.train.steps == 10
    assert LearnerConfig(lr=1).lr == 1.0
    with pytest.raises(ValueError):  # direct construction and replace() are validated too
        dataclasses.replace(cfg.train, steps=-1)
    cfg.train.steps = -1  # assignment is not; loading from a base config is
    with pytest.raises(ConfigError, match=r"^train\.steps: -1 is below the minimum 0$"):
        load_config(None, [], base=cfg)
