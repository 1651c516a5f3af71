"""CLI commands of the classify stage: ``feedwatch rules lint|test|explain|suggest``
and ``feedwatch eval``. Input: rule directories, items, label files; output: stdout.

The lead registers ``rules`` and ``eval_command`` on the top-level group. Errors are
raised as FeedwatchError subclasses (exit status 2 in ``worker.cli``); ``lint`` and
``test`` exit 1 when they find problems.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from worker.classify import bundled_rules_dir, load_ruleset
from worker.classify.evaluate import LabelError, evaluate, item_from_json, read_labelled
from worker.classify.examples import run_examples
from worker.classify.explain import explain
from worker.classify.rules import load_rule_source
from worker.classify.ruleset import Ruleset
from worker.classify.suggest import suggest_rule
from worker.cli_context import resolve_rules_dir, settings_from
from worker.errors import ConfigError, RuleError
from worker.models import Item

__all__ = ["eval_command", "rules"]

log = logging.getLogger(__name__)

_rules_option = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Rules directory (default: config 'rules', else the bundled rules).",
)


def _load(ctx: click.Context, rules_dir: str | None, *, cached: bool = True) -> Ruleset:
    """The ruleset; ``cached=False`` always compiles (``rules test`` checks the files
    themselves)."""
    path = resolve_rules_dir(ctx, rules_dir)
    return load_ruleset(path, cache_dir=_cache_dir(ctx) if cached else None)


def _cache_dir(ctx: click.Context) -> str | None:
    """The configured ``cache_dir``; None (no cache) if the config cannot be read,
    as ``--rules DIR`` needs no config."""
    try:
        return settings_from(ctx).cache_dir
    except ConfigError as e:
        log.debug("rules cache: not used, the config cannot be read: %s", e)
        return None


@click.group("rules")
def rules() -> None:
    """Check, test and explain classification rules."""


@rules.command("lint")
@_rules_option
@click.pass_context
def lint(ctx: click.Context, rules_dir: str | None) -> None:
    """Validate every rule file; exit 1 if there are problems."""
    path = resolve_rules_dir(ctx, rules_dir)
    shown = path or str(bundled_rules_dir())
    try:
        source = load_rule_source(path or bundled_rules_dir())
        ruleset = Ruleset(source)
    except RuleError as e:
        click.echo(f"error: {e}")
        ctx.exit(1)
        return
    problems: list[str] = []
    for name, phrases in ruleset.lexicons.items():
        if not phrases:
            problems.append(f"lexicon {name}: empty")
    for rule in source.rules:
        where = source.rule_files[rule.id]
        if not rule.examples.positive:
            problems.append(f"{where}: rule {rule.id}: no positive examples")
        if not rule.examples.negative:
            problems.append(f"{where}: rule {rule.id}: no negative examples")
    for p in problems:
        click.echo(f"warning: {p}")
    click.echo(
        f"{shown}: {len(source.files)} files, {len(source.rules)} rules, "
        f"{len(source.lexicon)} lexicons, {len(source.countries)} countries, "
        f"{len(source.people)} people: {'problems found' if problems else 'ok'}"
    )
    if problems:
        ctx.exit(1)


@rules.command("test")
@_rules_option
@click.argument("rule_ids", nargs=-1)
@click.pass_context
def test(ctx: click.Context, rules_dir: str | None, rule_ids: tuple[str, ...]) -> None:
    """Run each rule's positive and negative examples; exit 1 if any fails."""
    ruleset = _load(ctx, rules_dir, cached=False)
    known = {r.spec.id for r in ruleset.rules}
    unknown = set(rule_ids) - known
    if unknown:
        raise click.BadParameter(f"unknown rule ids: {', '.join(sorted(unknown))}")
    results = run_examples(ruleset, set(rule_ids) or None)
    failed = [r for r in results if not r.passed]
    for r in results:
        kind = "positive" if r.expected else "negative"
        state = "PASS" if r.passed else "FAIL"
        click.echo(f"{state} {r.rule} {kind}: {r.item.title}")
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        ctx.exit(1)


def _item_from_file(path: str, line: int) -> Item:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(path, 0, f"cannot read: {e}") from e
    if p.suffix == ".jsonl":
        rows = [r for r in text.splitlines() if r.strip()]
        if not 1 <= line <= len(rows):
            raise LabelError(path, line, f"no such line (file has {len(rows)} items)")
        raw, where = rows[line - 1], line
    else:
        raw, where = text, 1
    try:
        return item_from_json(json.loads(raw), f"{p.name}:{where}")
    except (json.JSONDecodeError, ValueError) as e:
        raise LabelError(path, where, str(e)) from None


@rules.command("explain")
@_rules_option
@click.argument("text", required=False)
@click.option("--summary", default="", help="Summary text to go with TEXT (the title).")
@click.option("--published", default=None, help="Date of the item (YYYY-MM-DD).")
@click.option(
    "--item",
    "item_file",
    type=click.Path(dir_okay=False),
    help="Item as JSON, or JSONL.",
)
@click.option(
    "--line", default=1, show_default=True, help="Which item of a JSONL file."
)
@click.pass_context
def explain_command(
    ctx: click.Context,
    rules_dir: str | None,
    text: str | None,
    summary: str,
    published: str | None,
    item_file: str | None,
    line: int,
) -> None:
    """Show why each rule fired or not on TEXT (a title) or an --item file."""
    if (text is None) == (item_file is None):
        raise click.UsageError("give either TEXT or --item FILE")
    if item_file is not None:
        item = _item_from_file(item_file, line)
    else:
        try:
            item = item_from_json(
                {
                    "id": "text",
                    "title": text,
                    "summary": summary,
                    "published": published,
                },
                "text",
            )
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--published") from None
    ruleset = _load(ctx, rules_dir)
    for row in explain(ruleset, item):
        click.echo(row)


@rules.command("suggest")
@_rules_option
@click.argument("article", type=click.Path(exists=True, dir_okay=False))
@click.option("--id", "rule_id", default="my-rule", show_default=True)
@click.pass_context
def suggest(
    ctx: click.Context, rules_dir: str | None, article: str, rule_id: str
) -> None:
    """Draft a rule file from an example ARTICLE (first line = headline)."""
    ruleset = _load(ctx, rules_dir)
    text = Path(article).read_text(encoding="utf-8", errors="replace")
    click.echo(suggest_rule(ruleset, text, rule_id), nl=False)


@click.command("eval")
@_rules_option
@click.argument("labels", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def eval_command(
    ctx: click.Context, rules_dir: str | None, labels: str, as_json: bool
) -> None:
    """Precision, recall and F1 against LABELS.jsonl, and the misclassified items."""
    items = read_labelled(labels)
    report = evaluate(items, _load(ctx, rules_dir))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{report.total} items")
    click.echo(f"{'':8} {'precision':>9} {'recall':>7} {'F1':>6}   tp  fp  fn")
    rows = [("alert", report.alert), *report.topics.items()]
    for name, s in rows:
        click.echo(
            f"{name:8} {s.precision:9.3f} {s.recall:7.3f} {s.f1:6.3f} "
            f"{s.tp:4d}{s.fp:4d}{s.fn:4d}"
        )
    click.echo(f"misclassified: {len(report.wrong)}")
    for li, d in report.wrong:
        exp = ",".join(sorted(li.labels)) or "none"
        got = ",".join(d.topics) or "none"
        click.echo(f"  {li.item.id}: expected {exp}, got {got}: {li.item.title}")
