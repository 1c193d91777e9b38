"""make ui's address: the experiment's runs table, or a clear message when there is nothing yet."""
from experiments import ui


def test_runs_url():
    assert ui.runs_url("127.0.0.1", 5000, "7") == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"


def test_no_store_yet_is_a_message_and_creates_nothing(tmp_path):
    url, message = ui.landing_url(f"sqlite:///{tmp_path}/mlflow.db", "gradpath")
    assert url == "http://127.0.0.1:5000/" and "no store" in message
    assert list(tmp_path.iterdir()) == []
