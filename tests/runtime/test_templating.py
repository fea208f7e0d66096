from __future__ import annotations

import subprocess
import sys

import pytest

from services.runtime.templating import TemplateError, evaluate_condition, render_value, with_paths

CONTEXT = {
    "input": with_paths({"who": "ada", "n": 2, "items": [1, 2]}, "input"),
    "steps": with_paths({"count": {"output": 3, "status": "succeeded"}, "data": {"output": {"items": [7]}}}, "steps"),
    "execution": {"id": "e1", "attempt": 1, "trigger": "manual", "scheduled_for": None},
    "workflow": {"name": "wf"},
}


def test_single_expression_keeps_json_types() -> None:
    rendered = render_value(
        {"n": "{{ steps.count.output }}", "list": "{{ input.items }}", "none": "{{ execution.scheduled_for }}",
         "obj": "{{ steps.data.output }}", "text": "{{ steps.count.output }} items", "plain": 5},
        CONTEXT,
    )
    assert rendered == {"n": 3, "list": [1, 2], "none": None, "obj": {"items": [7]}, "text": "3 items", "plain": 5}
    assert type(rendered["obj"]) is dict


def test_renders_recursively_including_keys_and_lists() -> None:
    rendered = render_value({"h-{{ input.who }}": ["{{ workflow.name }}", {"deep": "{{ input.n * 2 }}"}]}, CONTEXT)
    assert rendered == {"h-ada": ["wf", {"deep": 4}]}


def test_mapping_keys_win_over_methods() -> None:
    assert render_value("{{ steps.data.output.items }}", CONTEXT) == [7]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ steps.cuont.output }}", "steps.cuont is undefined"),
        ("{{ input.missing }}", "input.missing is undefined"),
        ("hello {{ nobody }}", "'nobody' is undefined"),
        ("{{ ().__class__.__mro__ }}", "unsafe"),
        ("{{ oops", "unexpected end of template"),
    ],
)
def test_errors_name_the_field_and_variable(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_value({"message": template}, CONTEXT)
    assert caught.value.field == "with.message"
    assert message in caught.value.message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (True, True), (False, False),
        ("{{ steps.count.output > 0 }}", True), ("{{ steps.count.output > 5 }}", False),
        ("steps.count.output == 3", True), ("input.who == 'bob'", False),
        ("{{ 'false' }}", False), ("{{ '' }}", False), ("{{ input.items }}", True), ("{{ [] }}", False),
        # The documented words as the whole `if`, not names to look up.
        ("", False), ("no", False), ("Off", False), ("null", False), (" none ", False), ("0", False),
        ("yes", True), ("on", True), ("TRUE", True), ("1", True),
    ],
)
def test_if_truthiness(condition: str | bool, expected: bool) -> None:
    assert evaluate_condition(condition, CONTEXT) is expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' * 10**10 }}", "would build more than"),
        ("{{ [1, 2] * 10000000 }}", "would build more than"),
        ("{{ 7 ** 100000000 }}", "exponent above"),
    ],
)
def test_templates_cannot_exhaust_memory_or_cpu(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_value({"message": template}, CONTEXT)
    assert message in caught.value.message


def test_ordinary_arithmetic_still_works() -> None:
    assert render_value("{{ 'ab' * 3 }}|{{ 2 ** 10 }}|{{ input.n * 2.5 }}|{{ 1.5 ** 2 }}", CONTEXT) == "ababab|1024|5.0|2.25"


def test_the_template_engine_is_loaded_only_for_a_template() -> None:
    # The runner starts faster when a workflow's parameters are plain: Jinja2 is a tenth of its start-up.
    probe = (
        "import sys\n"
        "from services.runtime import runner\n"
        "from services.runtime.templating import evaluate_condition, render_value\n"
        "render_value({'url': 'https://example.com', 'n': [1, 'a']}, {}); evaluate_condition(True, {})\n"
        "print('jinja2' in sys.modules)\n"
        "print(render_value('{{ 1 + 1 }}', {}), 'jinja2' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split("\n")[:2] == ["False", "2 True"]
