"""The documentation cannot drift: every `defectkd ...` command shown in README.md and docs/*.md parses against
the real CLI (verb, options, option types), its key=value overrides name real config keys, and the
configuration reference equals what the schemas generate."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.helpers import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def doc_commands() -> list[tuple[str, int, str]]:
    """(file, line, command) for every `defectkd` line inside fenced code blocks, continuations joined."""
    found = []
    for path in DOCS:
        fenced, pending, start = False, "", 0
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced, pending = not fenced, ""
                continue
            if not fenced:
                continue
            text = re.sub(r"\s+#\s.*$", "", line).strip().removeprefix("$ ")
            if pending:
                text, pending = pending + " " + text, ""
            elif not text.startswith("defectkd "):
                continue
            else:
                start = n
            if text.endswith("\\"):
                pending = text[:-1].strip()
                continue
            found.append((path.name, start, text))
    return found


def _schema_keys() -> set[str]:
    from defectkd.tasks import TASKS

    keys: set[str] = set()
    for task in TASKS.values():
        keys |= set(task.distill_config().model_fields)
    return keys


COMMANDS = doc_commands()


def test_the_docs_show_commands_for_every_verb():
    from typer.main import get_command

    from defectkd.cli import app

    verbs = {c[2].split()[1] for c in COMMANDS}
    assert len(COMMANDS) > 60
    assert set(get_command(app).commands) <= verbs, "verbs without a doc example"


def _rest(ctx) -> list[str]:
    """A group's unparsed words: the subcommand and its arguments (click 8.2 renamed protected_args)."""
    return list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args)


def parse_command(command: str) -> dict:
    """Parse a `defectkd ...` line with the real CLI, without running it: unknown verbs and options and badly
    typed values raise click errors; returns the innermost command's parameters."""
    from typer.main import get_command

    from defectkd.cli import app

    group = get_command(app)
    ctx = group.make_context("defectkd", shlex.split(command)[1:], resilient_parsing=False)
    cmd, rest = group, _rest(ctx)
    while hasattr(cmd, "resolve_command") and rest:  # a group (typer ships its own click)
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)
        rest = _rest(ctx) if hasattr(cmd, "resolve_command") else []
    return ctx.params


@pytest.mark.parametrize("where,line,command", COMMANDS, ids=[f"{f}:{n}" for f, n, _ in COMMANDS])
def test_documented_command_parses(where, line, command):
    params = parse_command(command)
    overrides = [a for a in params.get("overrides") or [] if "=" in a]
    unknown = {a.split("=", 1)[0] for a in overrides} - _schema_keys()
    assert not unknown, f"{where}:{line}: unknown config keys {unknown}"


@pytest.mark.parametrize("command,why", [("defectkd trian segment --data d", "No such command"),
                                         ("defectkd train segment --epoch 3", "No such option"),
                                         ("defectkd train segment --epochs three", "valid integer"),
                                         ("defectkd data synth segment --out o --sizes 3", "No such option"),
                                         ("defectkd export --weights w --fromat x", "No such option")])
def test_a_drifted_command_is_caught(command, why):
    with pytest.raises(Exception, match=why):
        parse_command(command)


def test_an_unknown_override_key_is_caught():
    params = parse_command("defectkd train segment --data d lrr=0.1")
    assert {a.split("=", 1)[0] for a in params["overrides"]} - _schema_keys() == {"lrr"}


def test_configuration_reference_is_current():
    from defectkd.config_docs import render

    assert (REPO / "docs" / "configuration.md").read_text() == render(), (
        "docs/configuration.md is stale: python -m defectkd.config_docs > docs/configuration.md")
