"""The web console in a real headless Chromium against the real local stack: sign in with a token, list a
project's models, train one and watch it turn `trained` live with its learning curve drawn, open its
confusion matrix, promote a version; a viewer sees no write buttons; another project's model is not found.
Screenshots go to docs/console/ (linked from the README)."""
from __future__ import annotations

import http.client
import json
import re
import urllib.parse
import uuid

import pytest
from console_samples import ONTOLOGY, SCREENSHOTS

pytestmark = pytest.mark.integration

TRAINING_CONFIG = {"max_iterations": 12, "early_stopping_rounds": 50, "random_seed": 7}


def raw_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (no client-side normalisation of `..` or escapes)."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def world(console_stack):
    """Projects, an ontology and models made through the API; the main model's first version trains meanwhile."""
    suffix = uuid.uuid4().hex[:6]
    team, other, crowd = f"team-{suffix}", f"other-{suffix}", f"crowd-{suffix}"
    editor = console_stack.api({team: "editor", crowd: "editor"})
    onto = editor.ok("POST", "/api/ontologies", {"project_id": team, "name": "Sensors", "content": ONTOLOGY}, 201)
    model = editor.ok("POST", "/api/ml-models", {
        "project_id": team, "ontology_id": onto["id"], "name": "Reading classifier", "type": "neural_network",
        "description": "Predicts the label from sensor readings", "training_config": TRAINING_CONFIG}, 201)
    draft = editor.ok("POST", "/api/ml-models", {
        "project_id": team, "ontology_id": onto["id"], "name": "Forest (not trained)", "type": "random_forest"}, 201)
    editor.ok("POST", "/api/ml-models/train", {"model_id": model["id"], "storage_ids": []}, 202)
    crowd_onto = editor.ok("POST", "/api/ontologies", {"project_id": crowd, "name": "S", "content": ONTOLOGY}, 201)
    for i in range(23):
        editor.ok("POST", "/api/ml-models", {"project_id": crowd, "ontology_id": crowd_onto["id"], "name": f"m{i:02d}",
                                             "type": "decision_tree"}, 201)
    return {"team": team, "other": other, "crowd": crowd, "editor": editor, "model": model, "draft": draft,
            "onto": onto}


UNCAUGHT: dict[int, list[str]] = {}  # each page's uncaught script errors


def sign_in(browser, console_stack, projects: dict[str, str], viewport=None):
    """A new tab signed in as a person would: the token field has the focus, paste, Enter."""
    page = browser.new_page()
    UNCAUGHT[id(page)] = []
    page.on("pageerror", lambda error: UNCAUGHT[id(page)].append(str(error)))
    if viewport:
        page.set_viewport_size(viewport)
    page.goto(console_stack.console_url)
    page.wait_for_selector("#token:focus")
    page.keyboard.insert_text(console_stack.token(projects))
    page.keyboard.press("Enter")
    page.wait_for_selector("#projects, h1:text('Projects')")
    return page


def finish(page) -> None:
    errors = UNCAUGHT.pop(id(page))
    page.close()
    assert not errors, errors


def live(page) -> None:
    page.wait_for_selector("#live-state[data-state=subscribed]")


def test_the_console_is_served_beside_the_api_and_nothing_outside_its_folder(console_stack):
    status, headers, body = raw_get(console_stack.base, "/console/")
    assert status == 200 and b'<script type="module" src="app.js">' in body
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert console_stack.ws_url in headers["Content-Security-Policy"]
    status, headers, body = raw_get(console_stack.base, "/console/config.json")
    assert status == 200 and json.loads(body) == {"websocket_url": console_stack.ws_url}
    status, headers, _ = raw_get(console_stack.base, "/console")
    assert status == 301 and headers["Location"] == "/console/"
    assert raw_get(console_stack.base, "/console/vendor/uplot/uPlot.esm.js")[0] == 200
    for sneaky in ("/console/../app.py", "/console/%2e%2e/app.py", "/console/..%2fapp.py",
                   "/console/vendor/../../app.py", "/console/%2E%2E/%2E%2E/etc/passwd", "/console//etc/passwd",
                   "/console/vendor/update.sh", "/console/.gitignore", "/console/views/../../README.md",
                   "/console/%5c..%5capp.py"):
        status, _, body = raw_get(console_stack.base, sneaky)
        assert status == 404, (sneaky, status)
        assert b"import" not in body and b"root:" not in body
    # The API behind the same port keeps its own door: no token, no data.
    status, _, body = raw_get(console_stack.base, "/api/ml-models?project_id=anything")
    assert status == 401 and json.loads(body)["code"] == "unauthorized"


def test_sign_in_lists_projects_then_models_with_status_filter_and_pages(browser, console_stack, world):
    team, crowd = world["team"], world["crowd"]
    page = sign_in(browser, console_stack, {team: "editor", crowd: "viewer"})
    assert team not in page.url and "eyJ" not in page.url  # ids in the hash, never the token
    token_kept = page.evaluate("Object.values(sessionStorage).join(' ')")
    assert token_kept.startswith("eyJ")
    cards = page.locator("#projects li")
    assert sorted(cards.all_inner_texts()) == sorted([f"{crowd}\nviewer", f"{team}\neditor"])

    page.focus(f"#projects a:text('{team}')")
    page.keyboard.press("Enter")
    page.wait_for_selector("#models tbody tr[data-model-id]")
    live(page)
    rows = page.locator("#models tbody tr[data-model-id]")
    assert rows.count() == 2
    assert page.locator(f"#models tr[data-model-id='{world['draft']['id']}'] .badge").inner_text() == "draft"
    page.select_option("#status-filter", "draft")
    assert page.locator("#models tbody tr[data-model-id]").all_inner_texts()[0].startswith("Forest (not trained)")
    assert page.locator("#models tbody tr[data-model-id]").count() == 1
    page.select_option("#status-filter", "")
    page.wait_for_selector("text=Ontologies")
    page.wait_for_selector("#ontologies li")
    page.screenshot(path=str(SCREENSHOTS / "models.png"), full_page=True)

    page.goto(f"{console_stack.console_url}#/projects/{crowd}")
    page.wait_for_selector("#models tbody tr[data-model-id]")
    assert page.locator("#models tbody tr[data-model-id]").count() == 20
    page.click("#next-page")
    page.wait_for_selector("#models-summary:text('Page 2')")
    assert page.locator("#models tbody tr[data-model-id]").count() == 3
    assert page.locator("#next-page").is_disabled()
    page.click("#previous-page")
    page.wait_for_selector("#models-summary:text('Page 1')")
    finish(page)


def test_a_new_model_with_the_recommend_step_prefilling_its_type(browser, console_stack, world):
    team = world["team"]
    page = sign_in(browser, console_stack, {team: "editor"})
    page.goto(f"{console_stack.console_url}#/projects/{team}")
    page.click("#new-model")
    page.wait_for_selector(f"#ontology option[value='{world['onto']['id']}']", state="attached")
    page.click("#recommend")
    page.wait_for_selector("#all-scores li")
    scores = page.locator("#all-scores .bar-value").all_inner_texts()
    assert len(scores) == 4 and [float(s) for s in scores] == sorted((float(s) for s in scores), reverse=True)
    picked = page.inner_text("#recommended-type")
    assert page.input_value("#model-type") == picked
    assert page.inner_text("#reasoning").strip()
    page.fill("#model-name-input", "Recommended pick")
    page.screenshot(path=str(SCREENSHOTS / "recommend.png"), full_page=True)
    page.click("#create-model button[type=submit]")
    page.click("#confirm-ok")
    page.wait_for_selector("#model-status[data-status=draft]")
    model_id = page.url.rsplit("/", 1)[1]
    created = world["editor"].ok("GET", f"/api/ml-models/{model_id}")
    assert (created["name"], created["type"], created["project_id"]) == ("Recommended pick", picked, team)
    finish(page)


# The WCAG contrast of each heat-grid cell's text against its background, as the browser computed them.
CELL_CONTRASTS = """() => [...document.querySelectorAll('table.heat tbody td')].map((cell) => {
    const style = getComputedStyle(cell);
    const lum = (rgb) => {
        const [r, g, b] = rgb.match(/\\d+/g).slice(0, 3).map((v) => v / 255)
            .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
})"""


def canvas_ink(page) -> int:
    """How many pixels of the learning curve's canvas are not blank."""
    return page.evaluate("""() => {
        const canvas = document.querySelector('#learning-curve canvas');
        if (!canvas) return 0;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let ink = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) ink++;
        return ink;
    }""")


def test_train_live_then_confusion_matrix_and_promote(browser, console_stack, world):
    team, model = world["team"], world["model"]
    first = world["editor"].wait_for_status(model["id"], ("trained", "failed"))
    assert first["status"] == "trained", first["metadata"]
    page = sign_in(browser, console_stack, {team: "editor"})
    page.goto(f"{console_stack.console_url}#/projects/{team}/models/{model['id']}")
    page.wait_for_selector("#model-status[data-status=trained]")
    live(page)
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

    page.click("#train")
    page.wait_for_selector("dialog#confirm[open]")
    assert page.locator("#confirm-title").inner_text() == "Train Reading classifier?"
    page.click("#confirm-ok")
    page.wait_for_selector("#model-status[data-status=training]", timeout=30_000)
    page.wait_for_selector("#learning-curve[data-live=true]")
    page.wait_for_selector("#model-status[data-status=trained]", timeout=120_000)
    page.wait_for_selector("#model-version:text('version 2')")
    assert page.evaluate("window.__sameDocument") is True
    points = int(page.get_attribute("#learning-curve", "data-points"))
    assert points >= 2, points
    assert page.locator("#learning-curve-data tbody tr").count() == points
    assert canvas_ink(page) > 500
    assert page.locator("#runs tbody tr").count() == 2
    assert page.locator("#runs tbody tr").first.locator(".badge").inner_text() == "succeeded"

    page.click("#confusion-matrix summary")
    grid = page.locator("table.heat")
    grid.wait_for()
    labels = grid.locator("thead th").all_inner_texts()[1:]
    assert labels and all(label.strip() for label in labels)
    counts = [int(text.replace(",", "")) for text in grid.locator("tbody td").all_inner_texts()]
    assert len(counts) == len(labels) ** 2 and sum(counts) > 0
    assert min(page.evaluate(CELL_CONTRASTS)) >= 4.5  # every count readable on its shade (WCAG AA)
    values = [float(v) for v in page.locator("#feature-importance .bar-value").all_inner_texts()]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    metrics = page.locator("#performance-metrics tbody th").all_inner_texts()
    assert "accuracy" in metrics
    page.screenshot(path=str(SCREENSHOTS / "model.png"), full_page=True)

    page.click("#promote-v1")
    page.wait_for_selector("dialog#confirm[open]")
    page.click("#confirm-ok")
    page.wait_for_selector("#model-version:text('version 1')")
    page.wait_for_selector("#versions tr[data-version='1'] .badge.current")
    assert world["editor"].ok("GET", f"/api/ml-models/{model['id']}")["version"] == 1
    assert page.evaluate("window.__sameDocument") is True
    finish(page)


def test_a_viewer_sees_no_write_buttons(browser, console_stack, world):
    team, model = world["team"], world["model"]
    page = sign_in(browser, console_stack, {team: "viewer"})
    page.goto(f"{console_stack.console_url}#/projects/{team}/models/{model['id']}")
    page.wait_for_selector("#read-only")
    page.wait_for_selector("#versions")
    for button in ("#train", "#archive", "#delete", "#cancel-training", "button.promote"):
        assert page.locator(button).count() == 0, button
    finish(page)


def test_another_projects_model_url_shows_not_found(browser, console_stack, world):
    page = sign_in(browser, console_stack, {world["other"]: "editor"})
    page.goto(f"{console_stack.console_url}#/projects/{world['team']}/models/{world['model']['id']}")
    page.wait_for_selector("#not-found")
    assert page.locator("#not-found").inner_text() == "Model not found"
    assert re.search(r"does not exist|not found", page.locator("main").inner_text())
    finish(page)


def test_archive_delete_and_errors_with_the_apis_own_message_on_a_phone(browser, console_stack, world):
    team, draft = world["team"], world["draft"]
    page = sign_in(browser, console_stack, {team: "editor"}, viewport={"width": 390, "height": 844})
    page.goto(f"{console_stack.console_url}#/projects/{team}/models/{world['model']['id']}")
    page.wait_for_selector("#versions")
    live(page)
    page.screenshot(path=str(SCREENSHOTS / "model-phone.png"), full_page=False)

    page.goto(f"{console_stack.console_url}#/projects/{team}/models/{draft['id']}")
    page.click("#archive")
    page.click("#confirm-ok")
    page.wait_for_selector("#model-status[data-status=archived]")
    assert page.locator("#train").is_disabled()
    page.click("#delete")
    assert page.locator("#confirm-ok").inner_text() == "Delete for good"
    page.keyboard.press("Escape")  # cancelled: nothing happens
    page.wait_for_function("!document.getElementById('confirm').open")
    assert world["editor"].call("GET", f"/api/ml-models/{draft['id']}")[0] == 200
    page.click("#delete")
    page.click("#confirm-ok")
    page.wait_for_selector("#models tbody tr[data-model-id]")
    assert page.locator(f"#models tr[data-model-id='{draft['id']}']").count() == 0
    assert world["editor"].call("GET", f"/api/ml-models/{draft['id']}")[0] == 404

    # A project the token does not name: the API answers 403, and the page shows the API's own message.
    status, refused = console_stack.api({team: "editor"}).call("GET", f"/api/ml-models?project_id={world['other']}")
    assert status == 403
    page.goto(f"{console_stack.console_url}#/projects/{world['other']}")
    page.wait_for_selector("#error:not([hidden])")
    assert refused["message"] in page.locator("#error").inner_text()
    finish(page)
