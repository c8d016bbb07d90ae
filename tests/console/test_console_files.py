"""The console's static files against the API they call: every [method, path] in console/api.js is an
operation of docs/openapi.yaml, no other module names an /api/ path of its own, every route a module
calls by name is in api.js, every module it imports is there, and nothing is loaded from another origin."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
OWN_MODULES = sorted(p for p in CONSOLE.rglob("*.js") if "vendor" not in p.relative_to(CONSOLE).parts)
ROUTE_ENTRY = re.compile(r'^\s*(\w+):\s*\[\s*"([A-Z]+)",\s*"([^"]+)"\s*\],?\s*$', re.M)
API_LITERAL = re.compile(r"""["'`](/api/[^"'`]*)""")
CALLED = re.compile(r"""\.call\(\s*["'](\w+)["']""")
IMPORT = re.compile(r"""^\s*import\s+(?:[^"']+\s+from\s+)?["']([^"']+)["']""", re.M)


def routes_block() -> str:
    source = (CONSOLE / "api.js").read_text()
    match = re.search(r"export const ROUTES = \{(.*?)\n\};", source, re.S)
    assert match, "console/api.js has no `export const ROUTES = {...};`"
    return match.group(1)


@pytest.fixture(scope="module")
def routes() -> dict[str, tuple[str, str]]:
    block = routes_block()
    entries = {name: (method, path) for name, method, path in ROUTE_ENTRY.findall(block)}
    # Every non-blank line of the block is one entry: an entry the pattern misses would go unchecked.
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(entries) == len(lines), lines
    return entries


@pytest.fixture(scope="module")
def spec_operations() -> set[tuple[str, str]]:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item if method in methods}


def test_every_route_the_console_calls_is_an_operation_of_the_openapi_document(routes, spec_operations):
    assert routes, "no routes found in console/api.js"
    missing = {name: route for name, route in routes.items() if route not in spec_operations}
    assert not missing, f"console routes not in docs/openapi.yaml: {missing}"


def test_no_module_but_api_js_names_an_api_path(routes):
    for module in OWN_MODULES:
        literals = API_LITERAL.findall(module.read_text())
        if module.name == "api.js" and module.parent == CONSOLE:
            assert sorted(literals) == sorted(path for _, path in routes.values())
        else:
            assert not literals, f"{module.relative_to(ROOT)} names API paths {literals}: add them to ROUTES in api.js"


def test_every_route_called_by_name_is_in_api_js(routes):
    called = {name for module in OWN_MODULES for name in CALLED.findall(module.read_text())}
    assert called, "found no api.call(...) in the console's modules"
    assert called <= set(routes), called - set(routes)
    assert set(routes) <= called, f"routes nobody calls: {set(routes) - called}"


def test_every_import_is_a_file_of_the_console_and_nothing_comes_from_another_origin():
    for module in OWN_MODULES:
        for target in IMPORT.findall(module.read_text()):
            assert target.startswith("."), f"{module.relative_to(ROOT)} imports {target}: only the console's own files"
            assert (module.parent / target).resolve().is_file(), f"{module.relative_to(ROOT)}: {target} is missing"
    html = (CONSOLE / "index.html").read_text()
    for reference in re.findall(r"""(?:src|href)=["']([^"']+)["']""", html):
        assert not re.match(r"^(?:[a-z]+:)?//", reference), f"index.html loads {reference} from another origin"
        if not reference.startswith("#"):
            assert (CONSOLE / reference).is_file(), reference


def test_the_vendored_chart_library_carries_its_licence():
    vendored = CONSOLE / "vendor" / "uplot"
    assert "MIT License" in (vendored / "LICENSE").read_text()
    assert "export { uPlot as default }" in (vendored / "uPlot.esm.js").read_text()


def luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of #rrggbb."""
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_meet_wcag_aa_contrast():
    css = (CONSOLE / "style.css").read_text()
    variables = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css))
    pairs = []
    # Every rule that sets both a background and a text colour (badges, buttons, banners).
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        background = re.search(r"background(?:-color)?:\s*(#[0-9a-fA-F]{6}|var\(--[\w-]+\))", body)
        colour = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6}|var\(--[\w-]+\))", body)
        if background and colour:
            pairs.append((selector.strip(), background.group(1), colour.group(1)))
    pairs += [("body", "var(--wash)", "var(--ink)"), ("muted text", "var(--paper)", "var(--muted)"),
              ("muted text on the page", "var(--wash)", "var(--muted)"), ("links", "var(--paper)", "var(--accent)")]

    def value(colour: str) -> str:
        return variables[colour[6:-1]] if colour.startswith("var(") else colour

    assert len(pairs) > 15, pairs
    low = [(s, b, c, round(contrast(value(b), value(c)), 2)) for s, b, c in pairs if contrast(value(b), value(c)) < 4.5]
    assert not low, low
