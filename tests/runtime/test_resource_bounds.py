"""Template and JMESPath work is bounded in memory (issue 15): each string-building operation
is refused with a clear step error before it allocates, a MemoryError fails its step instead of
leaving it running, and outputs are bounded without being serialised whole."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from services.contract import MAX_OUTPUT_BYTES
from services.runtime.limits import bound_output, json_preview, json_size
from services.runtime.steps.base import StepError
from services.runtime.steps.registry import StepRegistry
from services.runtime.steps.transform import search
from services.runtime.templating import TemplateError, render_value

CONTEXT = {"input": {"n": 2}, "steps": {}}

HUGE = [
    ("{{ 'x'.ljust(10**9) }}", "width"),
    ("{{ 'x'.rjust(10**9) }}", "width"),
    ("{{ 'x'.center(10**9) }}", "width"),
    ("{{ 'x'.zfill(10**9) }}", "width"),
    ("{{ 'x'|center(10**9) }}", "width"),
    ("{{ '{:>1000000000}'.format(1) }}", "width"),
    ("{{ '{:.1000000000f}'.format(1.0) }}", "width"),
    ("{{ '{0:>{1}}'.format(1, 10**9) }}", "from an argument"),
    ("{{ '{:>1000000000}'.format_map({}) }}", "width"),
    ("{{ '%1000000000d' % 1 }}", "width"),
    ("{{ '%*d' % (10**9, 1) }}", "from an argument"),
    ("{{ '%1000000000s'|format('x') }}", "width"),
    ("{{ ('y' * 1000000).replace('y', 'z' * 1000) }}", "more than"),
    ("{{ ('y' * 1000000)|replace('y', 'z' * 1000) }}", "more than"),
    ("{{ ('a\\n' * 500000)|indent(1000) }}", "more than"),
    ("{{ 'x'|indent(10**9) }}", "width"),
    ("{{ 'a\\tb'.expandtabs(10**9) }}", "more than"),
    ("{{ range(100000)|join('x' * 1000) }}", "more than"),
    ("{{ ('x' * 1000).join(range(100000)) }}", "more than"),
    ("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "more than"),
    ("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "more than"),
    ("{% for i in range(100000) %}{{ 'x' * 1000000 }}{% endfor %}", "more than"),
    ("{{ [1]|batch(10**9, 0)|list }}", "width"),
    ("{{ [1]|slice(10**9)|list }}", "width"),
    ("{{ {'a': [1, 2]}|tojson(indent=10**6) }}", "indent"),
    # Integers: a chain of `**` (each exponent small) or of `*` would hold the CPU in one C call.
    ("{{ (((10**1000)**1000)**1000) > 1 }}", "more than 100000 bits"),
    ("{{ ((10**1000)**1000)**20 }}", "more than 100000 bits"),
    ("{% set ns = namespace(n=10**1000) %}{% for i in range(100) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
     "more than 100000 bits"),
    ("{% set ns = namespace(l=[0]) %}{% for i in range(30) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
     "more than 1000000 items"),
    # Growing a list in place, and Jinja's lorem ipsum generator, are not available at all.
    ("{% set l = [0] %}{% for i in range(26) %}{% set _ = l.extend(l) %}{% endfor %}", "unsafe"),
    ("{{ lipsum(20000, False, 999, 1000) }}", "lipsum"),
]


@pytest.mark.parametrize(("template", "message"), HUGE, ids=[t[:40] for t, _ in HUGE])
def test_string_building_is_refused_before_it_allocates(template: str, message: str) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateError) as caught:
            render_value({"message": template}, CONTEXT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message in caught.value.message and caught.value.field == "with.message"
    assert peak < 200 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert time.monotonic() - started < 10


def test_a_template_cannot_change_its_context() -> None:
    """`input` and step outputs are read-only: a template cannot change what later steps see."""
    context = {"input": {"n": 2}, "steps": {"a": {"output": {"ok": True}}}}
    for template in ("{{ steps.a.output.update({'ok': False}) }}", "{{ input.clear() }}", "{{ input.pop('n') }}",
                     "{{ steps.a.output.__setitem__('ok', 1) }}", "{% set x = [1] %}{{ x.append(2) }}"):
        with pytest.raises(TemplateError):
            render_value(template, context)
    assert context == {"input": {"n": 2}, "steps": {"a": {"output": {"ok": True}}}}
    # Building new values is still fine.
    assert render_value("{{ input | length }} {{ [1] + [2] }} {{ 2 ** 10 * 3 }}", context) == "1 [1, 2] 3072"


def test_ordinary_string_operations_still_work() -> None:
    template = (
        "{{ 'ab' ~ 'cd' }} {{ 'a,b'.replace(',', ';') }} {{ [1, 2]|join(',') }} {{ '%05d' % 3 }} "
        "{{ '{:>5}'.format(1) }}|{{ 'x'|center(5) }}|{{ 'a\\nb'|indent(2) }} {{ [{'a': 1}]|join(',', attribute='a') }} "
        "{{ ','.join(['a', 'b']) }} {{ 'x'.ljust(3) }}| {{ [1, 2, 3]|batch(2)|list }} {{ {'a': 1}|tojson }} "
        "{{ 'a b'|replace(' ', '_') }} {{ 'n=%d'|format(4) }} {{ 'xy' + 'z' }}"
    )
    assert render_value(template, CONTEXT) == (
        "abcd a;b 1,2 00003     1|  x  |a\n  b 1 a,b x  | [[1, 2], [3]] {\"a\": 1} a_b n=4 xyz"
    )


def test_chained_jmespath_projections_are_bounded() -> None:
    data = {"l": list(range(1000))}
    expression = "l" + "[].[@, @, @, @, @, @, @, @]" * 8 + "[]"
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(StepError, match="more than 2000000 steps of work"):
            search(expression, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert time.monotonic() - started < 20
    items = {"items": [{"id": i, "name": str(i)} for i in range(50_000)]}
    assert len(search("items[].{id: id, name: name}", items)) == 50_000


def test_a_chained_projection_fails_the_transform_step(run_workflow) -> None:
    expression = "input.l" + "[].[@, @, @, @, @, @, @, @]" * 8 + "[]"
    code, execution, steps = run_workflow(
        json.dumps({"name": "proj", "steps": [{"id": "t", "type": "transform", "with": {"expression": expression}}]}),
        input={"l": list(range(1000))},
    )
    assert code == 1 and steps[0].status == "failed"
    assert "steps of work" in execution.error


def test_a_memory_error_fails_the_step_and_the_run(run_workflow) -> None:
    class Greedy:
        def run(self, params, context):
            raise MemoryError()

    class EntryPoint:
        def load(self):
            return Greedy

    registry = StepRegistry(discover=lambda: {"greedy": EntryPoint()})
    code, execution, steps = run_workflow("name: greedy\nsteps: [{id: g, type: greedy}]", registry=registry)
    assert code == 1 and execution.status == "failed"
    assert [s.status for s in steps] == ["failed"]
    assert execution.error == "step 'g' failed: MemoryError"


def test_a_template_memory_error_fails_the_step(run_workflow, monkeypatch) -> None:
    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr("services.runtime.templating._render_bounded", exhausted)
    code, execution, steps = run_workflow("name: t\nsteps: [{id: l, type: log, with: {message: 'a {{ 1 }}'}}]")
    assert code == 1 and execution.status == "failed" and [s.status for s in steps] == ["failed"]
    assert "MemoryError" in execution.error


def test_outputs_are_bounded_without_serialising_them_whole(monkeypatch) -> None:
    big = {"rows": [{"id": i, "text": "é" * 50} for i in range(20_000)]}
    exact = len(json.dumps(big, separators=(",", ":"), ensure_ascii=False).encode())
    assert json_size(big) == exact
    calls: list[int] = []
    real_dumps = json.dumps

    def counting_dumps(value, *args, **kwargs):
        text = real_dumps(value, *args, **kwargs)
        calls.append(len(text))
        return text

    monkeypatch.setattr("services.runtime.limits.json.dumps", counting_dumps)
    bounded = bound_output(big)
    assert bounded["truncated"] is True and bounded["size_bytes"] == exact
    assert bounded["preview"] == real_dumps(big, separators=(",", ":"), ensure_ascii=False)[:4096]
    assert max(calls) < MAX_OUTPUT_BYTES  # nothing near the whole value was ever encoded at once
    assert json_preview({"a": "b"}) == '{"a":"b"}'
