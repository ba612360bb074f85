"""The worked Titanic example: the training script's contract and score.py's answers to good and bad payloads."""
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "titanic"
SEED_PASSENGER = {"Pclass": 1, "Sex": 0, "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.2833, "Embarked": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("titanic-out")
    result = subprocess.run(
        [sys.executable, "training.py", "--data", "data/titanic.csv", "--output-dir", str(out), "--n_estimators", "80"],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


@pytest.fixture(scope="module")
def score(trained, monkeypatch_module):
    out, _ = trained
    monkeypatch_module.setenv("AZUREML_MODEL_DIR", str(out))
    monkeypatch_module.syspath_prepend(str(EXAMPLE))
    module = importlib.import_module("score")
    module.init()
    return module


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_training_writes_model_and_metrics(trained):
    out, stdout = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cv_accuracy"] >= 0.78
    assert 0.5 < metrics["holdout_auc"] <= 1 and 0.5 < metrics["holdout_accuracy"] <= 1
    assert (out / "model.pkl").stat().st_size > 0
    assert stdout.count("\nfold ") == 10 and "10-fold CV accuracy" in stdout


def test_seed_passenger_survives(score):
    assert score.run(json.dumps(SEED_PASSENGER))["prediction"] == 1


def test_list_and_data_wrapper_forms(score):
    many = score.run(json.dumps([SEED_PASSENGER, {**SEED_PASSENGER, "Sex": 1, "Pclass": 3, "Fare": 7.25}]))
    assert many["predictions"][0] == 1 and len(many["probabilities"]) == 2
    wrapped = score.run(json.dumps({"data": [SEED_PASSENGER]}))
    assert wrapped["predictions"] == [1]


def test_missing_optional_fields_and_text_codes(score):
    result = score.run(json.dumps({"Pclass": 1, "Sex": "female", "Age": None, "SibSp": 0, "Parch": 0,
                                   "Embarked": "c"}))
    assert result["prediction"] in (0, 1)


@pytest.mark.parametrize("payload, message", [
    ("not json", "not valid JSON"),
    ("[]", "non-empty list"),
    ('"text"', "send one passenger object"),
    (json.dumps({**SEED_PASSENGER, "Pclass": 5}), "Pclass must be one of [1, 2, 3]"),
    (json.dumps({**SEED_PASSENGER, "Age": "old"}), "Age must be a number"),
    (json.dumps({**SEED_PASSENGER, "Fare": -3}), "Fare must not be negative"),
    (json.dumps({**SEED_PASSENGER, "Sex": "robot"}), "Sex 'robot' is not one of"),
    (json.dumps({**SEED_PASSENGER, "Name": "Ann"}), "unknown field(s) Name"),
    (json.dumps({"Pclass": 1}), "missing field(s) Sex, SibSp, Parch"),
    (json.dumps([SEED_PASSENGER, 3]), "passenger 1: expected an object"),
])
def test_bad_payloads_get_a_clear_error(score, payload, message):
    result = score.run(payload)
    # Inside Azure ML's inference server package, run() answers HTTP 400 with a JSON body.
    assert result.status_code == 400 and result.mimetype == "application/json"
    assert message in json.loads(result.get_data())["error"]
