"""Scoring script for the Titanic model, in Azure ML's online-endpoint contract (init() once, run() per request).

Accepts one passenger object, a list of them, or {"data": [...]}. One passenger gets {"prediction": 0|1,
"probability": p}; several get {"predictions": [...], "probabilities": [...]}. A bad payload gets HTTP 400 with a
message saying what is wrong, never a stack trace.
"""
import json
import logging
import math
import os
from pathlib import Path

import joblib
import numpy as np

try:  # Azure ML's inference server: the azureml-defaults alias, then the server package itself
    from azureml.contrib.services.aml_response import AMLResponse
except ImportError:
    try:
        from azureml_inference_server_http.api.aml_response import AMLResponse
    except ImportError:  # imported outside the server (unit tests, notebooks)
        AMLResponse = None

from features import EMBARKED_CODES, FEATURES, SEX_CODES

OPTIONAL = {"Age", "Fare", "Embarked"}  # imputed by the model when missing or null
ALLOWED = {"Pclass": {1, 2, 3}, "Sex": set(SEX_CODES.values()), "Embarked": set(EMBARKED_CODES.values())}
TEXT_CODES = {"Sex": SEX_CODES, "Embarked": EMBARKED_CODES}
MAX_ROWS = 10_000

model = None
log = logging.getLogger(__name__)


class PayloadError(ValueError):
    pass


def init():
    global model
    model_dir = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    found = sorted(model_dir.rglob("model.pkl"))
    if not found:
        raise FileNotFoundError(f"no model.pkl under AZUREML_MODEL_DIR={model_dir}")
    model = joblib.load(found[0])
    log.info("Loaded Titanic model from %s", found[0])


def _number(name, value, row):
    if isinstance(value, str) and name in TEXT_CODES:
        code = TEXT_CODES[name].get(value.strip().capitalize() if name == "Embarked" else value.strip().lower())
        if code is None:
            raise PayloadError(f"passenger {row}: {name} '{value}' is not one of {sorted(TEXT_CODES[name])}")
        return float(code)
    if value is None:
        if name in OPTIONAL:
            return math.nan
        raise PayloadError(f"passenger {row}: {name} is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PayloadError(f"passenger {row}: {name} must be a number, got {json.dumps(value)}")
    if name in ALLOWED and value not in ALLOWED[name]:
        raise PayloadError(f"passenger {row}: {name} must be one of {sorted(ALLOWED[name])}, got {value}")
    if value < 0:
        raise PayloadError(f"passenger {row}: {name} must not be negative, got {value}")
    return float(value)


def parse_payload(raw_data):
    """Returns (rows as a feature matrix, whether a single passenger was sent)."""
    try:
        payload = json.loads(raw_data) if isinstance(raw_data, (str, bytes, bytearray)) else raw_data
    except ValueError as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}") from None
    single = isinstance(payload, dict) and "data" not in payload
    if isinstance(payload, dict) and "data" in payload:
        payload = payload["data"]
    passengers = [payload] if single else payload
    if not isinstance(passengers, list) or not passengers:
        raise PayloadError('send one passenger object, a non-empty list of them, or {"data": [...]}')
    if len(passengers) > MAX_ROWS:
        raise PayloadError(f"at most {MAX_ROWS} passengers per request")
    rows = []
    for i, passenger in enumerate(passengers):
        if not isinstance(passenger, dict):
            raise PayloadError(f"passenger {i}: expected an object with the fields {', '.join(FEATURES)}")
        unknown = sorted(set(passenger) - set(FEATURES))
        if unknown:
            raise PayloadError(f"passenger {i}: unknown field(s) {', '.join(unknown)}; expected {', '.join(FEATURES)}")
        missing = [f for f in FEATURES if f not in passenger and f not in OPTIONAL]
        if missing:
            raise PayloadError(f"passenger {i}: missing field(s) {', '.join(missing)}")
        rows.append([_number(name, passenger.get(name), i) for name in FEATURES])
    return np.array(rows, dtype=float), single


def _error(message):
    if AMLResponse is not None:
        return AMLResponse({"error": message}, 400, json_str=True)
    return {"error": message}


def run(raw_data):
    try:
        rows, single = parse_payload(raw_data)
    except PayloadError as exc:
        return _error(str(exc))
    # One pass over the forest: the predicted class is the likelier one (predict() would walk the trees again).
    proba = model.predict_proba(rows)
    predictions = model.classes_[proba.argmax(axis=1)].astype(int).tolist()
    probabilities = [round(float(p), 4) for p in proba[:, 1]]
    if single:
        return {"prediction": predictions[0], "probability": probabilities[0]}
    return {"predictions": predictions, "probabilities": probabilities}
