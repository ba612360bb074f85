"""Trains the Titanic survival model: a scikit-learn pipeline (median imputation, random forest).

The job contract the portal follows on every backend: data comes in with --data, hyperparameters as command-line
arguments, and the script writes the model and a metrics.json into --output-dir.
"""
import argparse
import json
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from features import DROPPED, EMBARKED_CODES, FEATURES, SEX_CODES
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="titanic.csv")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--n_estimators", type=int, default=200)
    parser.add_argument("--max_depth", type=int, default=7)
    parser.add_argument("--min_samples_leaf", type=int, default=2)
    parser.add_argument("--max_features", choices=["sqrt", "log2", "all"], default="sqrt")
    parser.add_argument("--cv_folds", type=int, default=10)
    parser.add_argument("--test_size", type=float, default=0.2)
    parser.add_argument("--random_state", type=int, default=42)
    return parser.parse_args(argv)


def load_passengers(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(path)
    frame = frame.drop(columns=[c for c in DROPPED if c in frame.columns])
    # Numbers for the two text columns; an unknown or missing port becomes NaN and is imputed like Age and Fare.
    frame["Sex"] = frame["Sex"].map(SEX_CODES)
    frame["Embarked"] = frame["Embarked"].map(EMBARKED_CODES)
    return frame[FEATURES].astype(float), frame["Survived"].astype(int)


def build_pipeline(args: argparse.Namespace) -> Pipeline:
    return Pipeline([
        ("impute", SimpleImputer(strategy="median")),
        ("forest", RandomForestClassifier(
            n_estimators=args.n_estimators,
            max_depth=args.max_depth,
            min_samples_leaf=args.min_samples_leaf,
            max_features=None if args.max_features == "all" else args.max_features,
            random_state=args.random_state,
            n_jobs=1,
        )),
    ])


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.time()
    X, y = load_passengers(args.data)
    print(f"Loaded {len(X)} passengers, {int(y.sum())} survived; features: {', '.join(FEATURES)}", flush=True)
    X, y = X.to_numpy(), y.to_numpy()  # plain arrays, so score.py can predict without building a DataFrame
    params = {k: v for k, v in vars(args).items() if k not in {"data", "output_dir"}}
    print(f"Parameters: {json.dumps(params)}", flush=True)

    folds = StratifiedKFold(n_splits=args.cv_folds, shuffle=True, random_state=args.random_state)
    scores = cross_val_score(build_pipeline(args), X, y, cv=folds, scoring="accuracy")
    for i, score in enumerate(scores, 1):
        print(f"fold {i}/{args.cv_folds}: accuracy {score:.4f}", flush=True)
    print(f"{args.cv_folds}-fold CV accuracy: {scores.mean():.4f} ± {scores.std():.4f}", flush=True)

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.random_state)
    model = build_pipeline(args).fit(X_train, y_train)
    holdout_accuracy = accuracy_score(y_test, model.predict(X_test))
    holdout_auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    print(f"Holdout accuracy: {holdout_accuracy:.4f}  AUC: {holdout_auc:.4f}", flush=True)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, args.output_dir / "model.pkl")
    metrics = {
        "cv_accuracy": round(float(scores.mean()), 6),
        "cv_accuracy_std": round(float(scores.std()), 6),
        "holdout_accuracy": round(float(holdout_accuracy), 6),
        "holdout_auc": round(float(holdout_auc), 6),
        "train_rows": int(len(X_train)),
        "holdout_rows": int(len(X_test)),
        "training_seconds": round(time.time() - started, 3),
    }
    (args.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (args.output_dir / "features.json").write_text(json.dumps({"features": FEATURES, "sex": SEX_CODES,
                                                                "embarked": EMBARKED_CODES}, indent=2))
    print(f"Wrote model.pkl and metrics.json to {args.output_dir}", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
