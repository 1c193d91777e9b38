"""The MLflow UI answers "which layer, and how small?": Debian's Chromium (Playwright) against a real
`mlflow ui` on 127.0.0.1 over a small store made by the entry point and the report. It opens the runs
table at the address `make ui` prints, a job run's profile charts and the parent's description, and
saves a screenshot of each under the test's temporary directory."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from experiments import ui

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.slow
UI_TIMEOUT_MS = 90_000  # the UI's first load compiles nothing, but this machine's 2 cores are shared


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing under CI: .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A two-run sweep with its report, served by `mlflow ui`; stopped (its process group) at the end."""
    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root}/mlflow.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    sweep = subprocess.run([sys.executable, str(REPO / "experiments" / "train.py"), "-m", "activation=tanh,relu",
                            "model.depth=6", "model.width=16", "train.epochs=2", "train.batch_size=128",
                            "train.log_every=4", "train.probe_size=64", "hydra/launcher=basic",
                            f"tracking.uri={uri}", f"hydra.sweep.dir={root}/multirun"],
                           capture_output=True, text=True, timeout=600, cwd=root, env=env)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "analysis.report", "--tracking-uri", uri, "--out",
                             str(root / "reports"), "--jobs", "1"], capture_output=True, text=True, timeout=600,
                            cwd=REPO, env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", "127.0.0.1", "--port", str(port)], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, "mlflow ui did not start"
            time.sleep(0.5)
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("gradpath")
        runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
        yield {"uri": uri, "port": port, "experiment_id": exp.experiment_id, "runs": runs, "root": root}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    yield page
    context.close()


def test_landing_url_opens_the_runs_table(store, page, tmp_path):
    url, message = ui.landing_url(store["uri"], "gradpath", port=store["port"])
    assert message == "" and url == (f"http://127.0.0.1:{store['port']}/#/experiments/{store['experiment_id']}"
                                     "/runs?workflowType=machine_learning")
    page.goto(url)
    parent = next(name for name, run in store["runs"].items() if run.data.tags.get("role") == "parent")
    page.get_by_role("heading", name="Runs", exact=True).first.wait_for()
    _assert_model_training_view(page)
    assert page.get_by_text("Training runs", exact=True).count() == 0  # the GenAI view's title of this page
    page.get_by_text("Latest sweep:").first.wait_for()          # the experiment's description names it
    page.get_by_text(f"{len(store['runs'])} matching runs").first.wait_for()  # the table has loaded
    row = page.get_by_role("row").filter(has_text=parent[:12])  # the sweep's parent, its jobs nested under it
    row.first.wait_for()
    page.screenshot(path=tmp_path / "runs_table.png")
    assert (tmp_path / "runs_table.png").stat().st_size > 10_000


def test_a_run_shows_its_gradient_norm_profile_against_layer(store, page, tmp_path):
    run = store["runs"]["tanh-xavier_uniform-d6-sgd-s0"]
    page.goto(f"http://127.0.0.1:{store['port']}/#/experiments/{store['experiment_id']}/runs/"
              f"{run.info.run_id}/model-metrics?{VIEW}")
    page.get_by_placeholder("Search metric charts").fill("profile_init")
    page.get_by_text("(profile_init/log10_grad_norm)").first.wait_for()
    page.get_by_text("log10_grad_norm", exact=True).first.wait_for()
    page.locator("svg text", has_text="Step").first.wait_for()  # the plot's x axis (step = layer) is drawn
    _assert_model_training_view(page)
    page.screenshot(path=tmp_path / "profile_init.png")
    assert (tmp_path / "profile_init.png").stat().st_size > 10_000


def test_the_parent_run_reads_like_a_front_page(store, page, tmp_path):
    parent = next(run for run in store["runs"].values() if run.data.tags.get("role") == "parent")
    # the experiment description's link to the parent keeps the model-training view
    page.goto(ui.runs_url("127.0.0.1", store["port"], store["experiment_id"]))
    page.get_by_text("Latest sweep:").first.wait_for()
    hrefs = page.locator(f"a[href*='runs/{parent.info.run_id}']").evaluate_all("links => links.map(a => a.href)")
    assert any(h.endswith(f"/runs/{parent.info.run_id}?{VIEW}") for h in hrefs), hrefs
    page.goto(f"http://127.0.0.1:{store['port']}/#/experiments/{store['experiment_id']}/runs/{parent.info.run_id}?{VIEW}")
    page.get_by_text("At a glance").first.wait_for()
    _assert_model_training_view(page)
    page.get_by_text("Show more").first.click()
    page.get_by_text("Trainability:").first.wait_for()
    page.get_by_text("(outcome tag: 2 ok).").first.wait_for()
    link = page.get_by_role("link", name="report.html").first
    assert link.get_attribute("href") == (f"#/experiments/{store['experiment_id']}/runs/{parent.info.run_id}"
                                          f"/artifacts/report/report.html?{VIEW}")
    page.screenshot(path=tmp_path / "parent_note.png")
    # The link's route shows the self-contained report in the artifact viewer.
    page.goto(f"http://127.0.0.1:{store['port']}/{link.get_attribute('href')}")
    frame = next(f for f in _frames_when(page, lambda f: f.url.startswith("blob:")))
    frame.get_by_text("At a glance").first.wait_for()
    assert frame.locator("img[src^='data:image/png;base64,']").count() >= 1
    # no relative link: in the viewer's sandboxed blob: frame it would open about:blank#blocked
    assert frame.locator("a[href]:not([href*=':'])").count() == 0
    frame.get_by_text("summary.csv").first.wait_for()  # named as an artifact path instead
    page.screenshot(path=tmp_path / "report_html.png")


VIEW = "workflowType=machine_learning"


def _assert_model_training_view(page):
    """The UI's model-training view: its sidebar lists Models; the GenAI view's lists Judges instead."""
    page.get_by_role("link", name="Models", exact=True).first.wait_for()
    assert page.get_by_role("link", name="Judges", exact=True).count() == 0


def _frames_when(page, predicate, timeout=UI_TIMEOUT_MS / 1000):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [frame for frame in page.frames if predicate(frame)]
        if found:
            return found
        page.wait_for_timeout(500)
    raise AssertionError("no such frame")
