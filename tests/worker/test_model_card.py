"""The adapter download is useful on its own: a real model card, the config, the base model, a name
that says which job it is from, and a loading snippet that runs (issue 13, item 5)."""

from __future__ import annotations

import json
import re
import zipfile

from worker.model_card import LOAD_SNIPPETS, load_snippet
from worker.tasks import train_job

from .conftest import tiny_digits


def test_the_zip_has_a_model_card_config_and_base_model_and_its_snippet_loads_the_adapter(
    service, worker_context, tmp_path, monkeypatch
):
    job = service.submit(preset="digits-even", overrides=tiny_digits(name="card-demo"))
    assert train_job(worker_context, job.id) == "succeeded"
    path = service.adapter_zip(job.id)
    assert path.name == f"card-demo-{job.id[:8]}-step-000006.zip"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        card = archive.read("README.md").decode()
        adapter_config = json.loads(archive.read("adapter_config.json"))
        archive.extractall(tmp_path / "adapter")
    assert {"README.md", "config.yaml", "adapter_config.json", "adapter_model.safetensors", "samples.png"} <= names
    assert "More Information Needed" not in card
    assert adapter_config["base_model_name_or_path"] == "builtin:digits-flow"
    for expected in (
        "`builtin:digits-flow`",
        "| algorithm | adrpo |",
        "| β₀ | 0.1 |",
        "[-β₀, +β₀]",
        "`digits:even`",
        "| steps | 6 of 6 |",
        "| reward/mean |",
        "![samples](samples.png)",
    ):
        assert expected in card, expected
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert snippet.strip() == load_snippet(job.config) and len(snippet.strip().splitlines()) == 3
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(snippet, scope)  # noqa: S102 - the card's own three lines, as a reader would paste them
    model = scope["model"]
    assert any("lora" in name for name, _ in model.named_parameters())


def test_every_kind_has_a_three_line_snippet_naming_its_base():
    config = {"kind": "llm", "model": {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}}
    assert "Qwen/Qwen2.5-0.5B-Instruct" in load_snippet(config)
    assert all(len(snippet.splitlines()) == 3 for snippet in LOAD_SNIPPETS.values())
    from adrpo_engine.kinds import KINDS

    assert set(KINDS) <= set(LOAD_SNIPPETS)  # a job of any kind gets a card (an audio job's zip once had none)
