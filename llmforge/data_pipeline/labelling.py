"""Labelling as plain functions: tasks, annotation checks, assignment, agreement and export.

A labelling project shows rows of a dataset version to annotators under one task;
this module is everything about that which does not need a server::

    task = ClassificationTask(labels=["spam", "ham"])
    items = make_items(task, rows)                          # snapshot the fields the task needs
    plan = assign([i.id for i in items], ["ann", "bob"], overlap=2)   # {annotator: [item ids]}
    value = validate_value(task, "spam")                    # -> {"label": "spam"}
    report = agreement(annotations, task)                   # Cohen's kappa (2 annotators) or Fleiss' (more)
    result = export_rows(task, items, annotations)          # [{"text", "label"}, ...] for training

Annotation values, canonical form (the shorthand in brackets is accepted too):

    classification   {"label": "spam"}                                ("spam")
    multi-label      {"labels": ["a", "b"]}                            (["a", "b"])
    preference       {"choice": "a" | "b" | "tie", "reason": "..."}    ("a")
    demonstration    {"response": "..."}                               ("...")

Decisions: a preference ``"tie"`` ("both equally good or bad") is accepted only
when the task sets ``allow_tie``; it counts as a category for agreement and is
never exported (no chosen/rejected). Export takes the label with the most votes;
a tie for most votes skips the item and is counted. Agreement is Cohen's kappa
when exactly two annotators rated the items, else Fleiss' kappa over the items
that have the full number of ratings; multi-label tasks average a per-label
kappa; demonstrations have none. This module knows no database, HTTP or roles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
import random
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from llmforge.errors import InvalidInput

_FieldName = Annotated[str, Field(min_length=1, max_length=200)]


# --- tasks ---------------------------------------------------------------------------------


class ClassificationTask(BaseModel):
    """Pick the label (or, with ``multi_label``, every label) that fits a row's text."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["classification"] = "classification"
    text_field: _FieldName = "text"
    """The row field annotators read; exported as ``text``."""
    labels: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=500)
    """The allowed labels, in display order (2 or more for single-label tasks)."""
    multi_label: bool = False
    """True: an annotation is a non-empty set of labels, exported as ``labels``."""

    @model_validator(mode="after")
    def _labels_make_sense(self) -> "ClassificationTask":
        if len(set(self.labels)) != len(self.labels):
            dup = sorted({x for x in self.labels if self.labels.count(x) > 1})
            raise ValueError(f"labels repeat {dup}; list each label once")
        if not self.multi_label and len(self.labels) < 2:
            raise ValueError("a single-label task needs at least two labels")
        return self

    def fields(self) -> dict[str, str]:
        return {"text_field": self.text_field}


class PreferenceTask(BaseModel):
    """Which of two responses to a prompt is better, with an optional reason."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["preference"] = "preference"
    prompt_field: _FieldName = "prompt"
    response_a_field: _FieldName = "response_a"
    response_b_field: _FieldName = "response_b"
    allow_tie: bool = False
    """True: annotators may answer ``"tie"``; such items are never exported."""

    def fields(self) -> dict[str, str]:
        return {"prompt_field": self.prompt_field, "response_a_field": self.response_a_field,
                "response_b_field": self.response_b_field}


class DemonstrationTask(BaseModel):
    """Write the response to a prompt, or correct the one in ``response_field``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["demonstration"] = "demonstration"
    prompt_field: _FieldName = "prompt"
    response_field: _FieldName | None = None
    """A row field holding a draft response to correct (shown to annotators); None: write from scratch."""

    def fields(self) -> dict[str, str]:
        return {"prompt_field": self.prompt_field}


Task = Annotated[Union[ClassificationTask, PreferenceTask, DemonstrationTask], Field(discriminator="type")]
TASK_TYPES = ("classification", "preference", "demonstration")
_TASK = TypeAdapter(Task)


def parse_task(config: Mapping[str, Any]) -> ClassificationTask | PreferenceTask | DemonstrationTask:
    """A task from its JSON config (``{"type": ..., ...}``); InvalidInput names the bad field."""
    try:
        return _TASK.validate_python(dict(config))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"][1:] if p not in TASK_TYPES) or "type"
        raise InvalidInput(f"task.{loc}: {err['msg']}", param=f"task.{loc}") from None


# --- items ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One row to label: a snapshot of the fields the task needs, and an optional pre-label."""

    id: str
    row_index: int
    data: dict[str, Any]
    prelabel: dict[str, Any] | None = None


@dataclass(frozen=True)
class Annotation:
    """One annotator's answer for one item; ``value`` is canonical (``validate_value``), None when skipped."""

    item_id: str
    annotator: str
    value: dict[str, Any] | None
    skipped: bool = False
    updated_at: float = 0.0


def item_data(task: Task, row: Mapping[str, Any], row_index: int) -> dict[str, Any]:
    """The fields of ``row`` the task shows and exports; a missing one is an error naming the task field."""
    data = {}
    for setting, name in task.fields().items():
        if row.get(name) is None:
            raise InvalidInput(f"row {row_index} has no value for {name!r} (the task's {setting}); "
                               f"the row's fields are {sorted(row)}", param=f"task.{setting}")
        data[name] = row[name]
    if isinstance(task, DemonstrationTask) and task.response_field:
        data[task.response_field] = row.get(task.response_field)
    return data


def make_items(task: Task, rows: Iterable[Mapping[str, Any]], *, limit: int | None = None,
               prelabels: str | Mapping[int, Any] | None = None) -> list[Item]:
    """Items from the first ``limit`` rows (ids are row indexes as strings).

    Args:
        prelabels: a row field holding a suggested value for each row, or ``{row_index: value}``
            from a model; each is validated like an annotation. Missing/null means no pre-label.
    """
    items: list[Item] = []
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            break
        raw = row.get(prelabels) if isinstance(prelabels, str) else (prelabels or {}).get(i)
        pre = None if raw is None else validate_value(task, raw, param=f"prelabels.{i}")
        items.append(Item(id=str(i), row_index=i, data=item_data(task, row, i), prelabel=pre))
    if not items:
        raise InvalidInput("the dataset version has no rows to label")
    if isinstance(prelabels, Mapping) and (extra := sorted(k for k in prelabels if not 0 <= k < len(items))):
        raise InvalidInput(f"prelabels name rows {extra[:5]} but only rows 0-{len(items) - 1} are labelled",
                           param="prelabels")
    return items


# --- annotation values ---------------------------------------------------------------------


def _unpack(value: Any, key: str, param: str, optional: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """The main part of a value given as ``{key: x, ...}`` or as the bare shorthand ``x``."""
    if not isinstance(value, dict):
        return value, {}
    unknown = sorted(set(value) - {key, *optional})
    if unknown:
        raise InvalidInput(f"{param} has unknown key(s) {unknown}; expected {key!r}"
                           + (f" and optionally {list(optional)}" if optional else ""), param=param)
    if key not in value:
        raise InvalidInput(f"{param}.{key} is required", param=f"{param}.{key}")
    return value[key], {k: value[k] for k in optional if k in value}


def validate_value(task: Task, value: Any, *, param: str = "value") -> dict[str, Any]:
    """Check an annotation (or pre-label) against the task and return its canonical form."""
    if isinstance(task, ClassificationTask) and task.multi_label:
        labels, _ = _unpack(value, "labels", param)
        where = f"{param}.labels"
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise InvalidInput(f"{where} must be a list of labels from {task.labels}", param=where)
        if not labels:
            raise InvalidInput(f"{where} is empty: choose at least one label (or skip the item)", param=where)
        if unknown := [x for x in labels if x not in task.labels]:
            raise InvalidInput(f"{where}: {unknown} not among the task's labels {task.labels}", param=where)
        return {"labels": [x for x in task.labels if x in labels]}  # task order, no repeats
    if isinstance(task, ClassificationTask):
        label, _ = _unpack(value, "label", param)
        where = f"{param}.label"
        if not isinstance(label, str) or label not in task.labels:
            raise InvalidInput(f"{where}: {label!r} is not one of the task's labels {task.labels}", param=where)
        return {"label": label}
    if isinstance(task, PreferenceTask):
        choice, extra = _unpack(value, "choice", param, optional=("reason",))
        allowed = ("a", "b", "tie") if task.allow_tie else ("a", "b")
        if choice not in allowed:
            hint = "" if task.allow_tie else " (this task does not allow ties)"
            raise InvalidInput(f"{param}.choice: {choice!r} must be one of {list(allowed)}{hint}",
                               param=f"{param}.choice")
        reason = extra.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidInput(f"{param}.reason must be text", param=f"{param}.reason")
        return {"choice": choice, **({"reason": reason.strip()} if reason and reason.strip() else {})}
    response, _ = _unpack(value, "response", param)
    if not isinstance(response, str) or not response.strip():
        raise InvalidInput(f"{param}.response must be non-empty text (or skip the item)", param=f"{param}.response")
    return {"response": response}


# --- assignment ----------------------------------------------------------------------------


def assign(item_ids: Sequence[str], annotators: Sequence[str], overlap: int, seed: int = 0) -> dict[str, list[str]]:
    """Give each item to ``overlap`` distinct annotators, balancing load; same inputs, same plan.

    Greedy: each item goes to the least-loaded annotators, ties broken by a seeded draw, so loads
    differ by at most one and pairs of annotators mix. Lists keep the items' order.
    """
    if not annotators:
        raise InvalidInput("name at least one annotator", param="annotators")
    if len(set(annotators)) != len(annotators):
        raise InvalidInput("annotators lists a key twice; list each annotator once", param="annotators")
    if not 1 <= overlap <= len(annotators):
        raise InvalidInput(f"overlap {overlap} needs at least {overlap} annotator(s) and is at least 1; "
                           f"{len(annotators)} named", param="overlap")
    rng = random.Random(seed)
    order = sorted(annotators)
    load = dict.fromkeys(order, 0)
    plan: dict[str, list[str]] = {a: [] for a in order}
    for item in item_ids:
        draw = {a: rng.random() for a in order}
        for a in sorted(order, key=lambda a: (load[a], draw[a]))[:overlap]:
            load[a] += 1
            plan[a].append(item)
    return plan


# --- agreement -----------------------------------------------------------------------------


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over the same items; None when chance agreement is 1 (undefined)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need two equally long, non-empty rating lists (got {len(a)} and {len(b)})")
    n = len(a)
    ca, cb = Counter(a), Counter(b)
    chance = sum(ca[k] * cb[k] for k in ca)  # p_e * n^2, exact in integers
    if chance == n * n:
        return None
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = chance / (n * n)
    return (po - pe) / (1 - pe)


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa: ``ratings[i]`` is the categories item i got, the same number (>= 2) per item.

    None when every rating is the same category (chance agreement 1, kappa undefined).
    """
    if not ratings:
        raise ValueError("need at least one item")
    m = len(ratings[0])
    if m < 2 or any(len(r) != m for r in ratings):
        raise ValueError(f"every item needs the same number (>= 2) of ratings; got {sorted({len(r) for r in ratings})}")
    totals: Counter[Hashable] = Counter()
    p_sum = 0.0
    for r in ratings:
        c = Counter(r)
        totals.update(c)
        p_sum += (sum(v * v for v in c.values()) - m) / (m * (m - 1))
    if len(totals) == 1:
        return None
    n_all = len(ratings) * m
    p_bar = p_sum / len(ratings)
    pe = sum((t / n_all) ** 2 for t in totals.values())
    return (p_bar - pe) / (1 - pe)


def _category(task: Task) -> Callable[[dict[str, Any]], Hashable]:
    if isinstance(task, PreferenceTask):
        return lambda v: v["choice"]
    return lambda v: v["label"]


def agreement(annotations: Iterable[Annotation], task: Task) -> dict[str, Any]:
    """Inter-annotator agreement: ``{"method", "kappa", "items", "annotators", "percent_agreement",
    "per_label", "reason"}``. ``kappa`` is null with a ``reason`` when it cannot be computed."""
    report: dict[str, Any] = {"method": None, "kappa": None, "items": 0, "annotators": 0,
                              "percent_agreement": None, "per_label": None, "reason": None}
    if isinstance(task, DemonstrationTask):
        report["reason"] = "free-text demonstrations have no categorical agreement; review them instead"
        return report
    by_item: dict[str, dict[str, dict[str, Any]]] = {}
    for a in annotations:
        if not a.skipped and a.value is not None:
            by_item.setdefault(a.item_id, {})[a.annotator] = a.value
    sizes = [len(v) for v in by_item.values() if len(v) >= 2]
    if not sizes:
        report["reason"] = "no item has annotations from two or more annotators yet"
        return report
    m = max(sizes)  # the items rated by the full overlap
    full = [v for v in by_item.values() if len(v) == m]
    raters = sorted({a for v in full for a in v})
    cohen = len(raters) == 2

    def kappa(cat: Callable[[dict[str, Any]], Hashable]) -> float | None:
        if cohen:
            return cohen_kappa([cat(v[raters[0]]) for v in full], [cat(v[raters[1]]) for v in full])
        return fleiss_kappa([[cat(x) for x in v.values()] for v in full])

    if isinstance(task, ClassificationTask) and task.multi_label:
        per_label = {lab: kappa(lambda v, lab=lab: lab in v["labels"]) for lab in task.labels}
        defined = [k for k in per_label.values() if k is not None]
        value = sum(defined) / len(defined) if defined else None
        report["per_label"] = {k: None if v is None else round(v, 4) for k, v in per_label.items()}
        same = sum(len({tuple(x["labels"]) for x in v.values()}) == 1 for v in full)
    else:
        cat = _category(task)
        value = kappa(cat)
        same = sum(len({cat(x) for x in v.values()}) == 1 for v in full)
    report.update(method="cohen" if cohen else "fleiss", items=len(full), annotators=len(raters),
                  kappa=None if value is None else round(value, 4), percent_agreement=round(same / len(full), 4))
    if value is None:
        report["reason"] = "every annotation falls in one category, so chance agreement is 1 and kappa is undefined"
    return report


# --- export --------------------------------------------------------------------------------


class ExportPolicy(BaseModel):
    """How annotations become training rows."""

    model_config = ConfigDict(extra="forbid")
    min_votes: int = Field(default=1, ge=1, le=100)
    """Items with fewer (non-skipped) annotations are left out, counted as ``too_few_votes``."""


@dataclass
class ExportResult:
    rows: list[dict[str, Any]]
    text_field: str
    """The field dataset statistics are computed on."""
    counts: dict[str, Any] = field(default_factory=dict)
    """``{"items", "exported", "skipped": {reason: n}}``."""


def _plurality(values: list[Hashable]) -> Hashable | None:
    """The value with the most votes, or None when several share the most."""
    ranked = Counter(values).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def export_rows(task: Task, items: Sequence[Item], annotations: Iterable[Annotation],
                policy: ExportPolicy | None = None) -> ExportResult:
    """Annotations to rows in the shapes training consumes, in item order.

    classification ``{"text", "label"}`` (multi-label ``{"text", "labels"}``, a label kept when more
    than half the votes chose it), preference ``{"prompt", "chosen", "rejected"}`` (+ ``reason`` on
    every row when any row has one), demonstration ``{"prompt", "response"}`` (the latest wins).
    """
    policy = policy or ExportPolicy()
    votes: dict[str, list[Annotation]] = {}
    for a in annotations:
        if not a.skipped and a.value is not None:
            votes.setdefault(a.item_id, []).append(a)
    skipped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for item in sorted(items, key=lambda i: i.row_index):
        got = sorted(votes.get(item.id, []), key=lambda a: a.updated_at)
        if not got:
            skipped["unannotated"] += 1
            continue
        if len(got) < policy.min_votes:
            skipped["too_few_votes"] += 1
            continue
        row, why = _row(task, item, got)
        if row is None:
            skipped[why] += 1
        else:
            rows.append(row)
    if isinstance(task, PreferenceTask) and any("reason" in r for r in rows):
        rows = [{**r, "reason": r.get("reason")} for r in rows]  # one schema for every row
    text_field = ("text" if isinstance(task, ClassificationTask)
                  else "prompt" if isinstance(task, PreferenceTask) else "response")
    return ExportResult(rows=rows, text_field=text_field,
                        counts={"items": len(items), "exported": len(rows), "skipped": dict(sorted(skipped.items()))})


def _row(task: Task, item: Item, got: list[Annotation]) -> tuple[dict[str, Any] | None, str]:
    """One training row from an item's votes (oldest first), or (None, why it is skipped)."""
    d = item.data
    if isinstance(task, ClassificationTask) and task.multi_label:
        counts = Counter(lab for a in got for lab in a.value["labels"])
        if any(2 * c == len(got) for c in counts.values()):
            return None, "tie"
        labels = [lab for lab in task.labels if 2 * counts[lab] > len(got)]
        return ({"text": d[task.text_field], "labels": labels}, "") if labels else (None, "no_majority")
    if isinstance(task, ClassificationTask):
        label = _plurality([a.value["label"] for a in got])
        return ({"text": d[task.text_field], "label": label}, "") if label is not None else (None, "tie")
    if isinstance(task, PreferenceTask):
        choice = _plurality([a.value["choice"] for a in got])
        if choice is None:
            return None, "tie"
        if choice == "tie":
            return None, "no_preference"
        a, b = d[task.response_a_field], d[task.response_b_field]
        row = {"prompt": d[task.prompt_field], "chosen": a if choice == "a" else b, "rejected": b if choice == "a" else a}
        reasons = [v.value["reason"] for v in got if v.value["choice"] == choice and v.value.get("reason")]
        return ({**row, "reason": reasons[-1]} if reasons else row), ""
    return {"prompt": d[task.prompt_field], "response": got[-1].value["response"]}, ""
