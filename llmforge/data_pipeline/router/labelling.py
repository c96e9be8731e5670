"""REST surface of labelling (thin: load rows, call ``data_pipeline.labelling``, shape the response).

A labelling project snapshots the rows of a dataset version as items, assigns each to
``overlap`` annotators (keys with the editor role in the project) and collects their
annotations; agreement and export are computed by the core from what is stored.
Export writes a new dataset version with lineage
``dataset_version:<source>`` → ``label_project:<id>`` → ``dataset_version:<export>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select

from llmforge.data_pipeline.labelling import (Annotation, ExportPolicy, Item, Task, agreement, assign, export_rows,
                                              make_items, parse_task, validate_value)
from llmforge.data_pipeline.router.datasets import _dataset, _iso, _store, _version_public, _version_row
from llmforge.data_pipeline.schemas import VersionPublic
from llmforge.data_pipeline.tasks import record_version
from llmforge.errors import Forbidden, InvalidInput, NotFound
from llmforge.lineage import Ref
from llmforge.platform.auth import Principal
from llmforge.platform.deps import PrincipalDep, SessionDep, SettingsDep
from llmforge.platform.models import (ApiKey, Dataset, LabelAnnotation, LabelAssignment, LabelItem, LabelProject,
                                      LineageEdge, Membership, new_id, now)

router = APIRouter(prefix="/labelling", tags=["labelling"])
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_ITEMS = 100_000  # items are rows in the metadata database; for a bigger version, label its first `limit` rows


# --- wire models -------------------------------------------------------------------------


class LabellingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=90, pattern=_NAME)
    dataset_id: str
    version: str = Field(pattern=r"^[0-9a-f]{64}$", description="Digest of the dataset version to label.")
    task: Task = Field(description='{"type": "classification"|"preference"|"demonstration", ...its settings}')
    overlap: int = Field(default=1, ge=1, le=50, description="How many annotators label each item.")
    annotators: list[str] = Field(min_length=1, max_length=200, description="Key ids with the editor role or higher.")
    limit: int | None = Field(default=None, ge=1, le=MAX_ITEMS, description="Label only the first `limit` rows.")
    prelabels: str | dict[int, Any] | None = Field(
        default=None, description="A row field holding suggested values, or {row_index: value} from a model.")
    prelabel_source: str | None = Field(default=None, max_length=200, description="Where the pre-labels come from.")
    seed: int = Field(default=0, description="Seed of the (deterministic) assignment.")


class AnnotatorProgress(BaseModel):
    key_id: str
    name: str | None
    assigned: int
    done: int


class LabellingPublic(BaseModel):
    id: str
    project: str
    name: str
    dataset_id: str
    version: str
    task: dict[str, Any]
    overlap: int
    items: int
    annotations: int
    annotators: list[AnnotatorProgress]
    created_by: str | None
    created_at: datetime


class ItemPublic(BaseModel):
    id: str
    row_index: int
    data: dict[str, Any]
    prelabel: dict[str, Any] | None
    prelabel_source: str | None


class Progress(BaseModel):
    done: int
    total: int


class NextItem(BaseModel):
    item: ItemPublic
    progress: Progress


class AnnotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any = Field(default=None, description="The answer; its shape depends on the task type.")
    skip: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> "AnnotationIn":
        if (self.value is None) != self.skip:
            raise ValueError("send either a value or skip: true (not both, not neither)")
        return self


class AnnotationPublic(BaseModel):
    id: str
    item_id: str
    annotator: str
    annotator_name: str | None
    value: dict[str, Any] | None
    skipped: bool
    created_at: datetime
    updated_at: datetime


class LabellingExport(ExportPolicy):
    dataset_id: str | None = Field(default=None, description="Target dataset in the same project; "
                                   "default: '<name>-labels', created when missing.")


# --- helpers -----------------------------------------------------------------------------


def _label_project(session, principal: Principal, lp_id: str) -> LabelProject:  # noqa: ANN001
    lp = session.get(LabelProject, lp_id)
    if lp is None or not principal.can_see(lp.project_id):
        raise NotFound(f"labelling project {lp_id!r} not found")
    return lp


def _key_names(session, ids: set[str]) -> dict[str, str]:  # noqa: ANN001
    return dict(session.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(ids))).all()) if ids else {}


def _public(session, lp: LabelProject, principal: Principal) -> LabellingPublic:  # noqa: ANN001
    assigned = dict(session.execute(select(LabelAssignment.annotator, func.count()).where(
        LabelAssignment.label_project_id == lp.id).group_by(LabelAssignment.annotator)).all())
    done = dict(session.execute(select(LabelAnnotation.annotator, func.count()).where(
        LabelAnnotation.label_project_id == lp.id).group_by(LabelAnnotation.annotator)).all())
    items = session.scalar(select(func.count()).select_from(LabelItem).where(LabelItem.label_project_id == lp.id))
    names = _key_names(session, set(assigned))
    project = {pid: n for n, pid in principal.project_names.items()}[lp.project_id]
    return LabellingPublic(
        id=lp.id, project=project, name=lp.name, dataset_id=lp.dataset_id, version=lp.version, task=lp.config,
        overlap=lp.overlap, items=items or 0, annotations=sum(done.values()),
        annotators=[AnnotatorProgress(key_id=k, name=names.get(k), assigned=n, done=done.get(k, 0))
                    for k, n in sorted(assigned.items())],
        created_by=lp.created_by, created_at=_iso(lp.created_at))


def _item_public(it: LabelItem) -> ItemPublic:
    return ItemPublic(id=it.id, row_index=it.row_index, data=it.data, prelabel=it.prelabel,
                      prelabel_source=it.prelabel_source)


def _annotation_public(a: LabelAnnotation, names: dict[str, str]) -> AnnotationPublic:
    return AnnotationPublic(id=a.id, item_id=a.item_id, annotator=a.annotator, annotator_name=names.get(a.annotator),
                            value=a.value, skipped=a.skipped, created_at=_iso(a.created_at),
                            updated_at=_iso(a.updated_at))


def _check_annotators(session, project_id: str, annotators: list[str]) -> None:  # noqa: ANN001
    roles = dict(session.execute(
        select(Membership.key_id, Membership.role).join(ApiKey, ApiKey.id == Membership.key_id)
        .where(Membership.project_id == project_id, Membership.key_id.in_(annotators), ApiKey.revoked_at.is_(None))).all())
    if missing := [a for a in annotators if a not in roles]:
        raise InvalidInput(f"annotators {missing} are not (unrevoked) keys of this project; "
                           "add them to the project first", param="annotators")
    if viewers := [a for a in annotators if roles[a] == "viewer"]:
        raise InvalidInput(f"annotators {viewers} are viewers; annotating needs the editor role", param="annotators")


def _stored(session, lp: LabelProject) -> tuple[list[Item], list[Annotation]]:  # noqa: ANN001
    items = [Item(id=i.id, row_index=i.row_index, data=i.data, prelabel=i.prelabel)
             for i in session.scalars(select(LabelItem).where(LabelItem.label_project_id == lp.id))]
    anns = [Annotation(item_id=a.item_id, annotator=a.annotator, value=a.value, skipped=a.skipped,
                       updated_at=a.updated_at)
            for a in session.scalars(select(LabelAnnotation).where(LabelAnnotation.label_project_id == lp.id))]
    return items, anns


def _add_edge(session, project_id: str, src: str, dst: str, relation: str) -> None:  # noqa: ANN001
    if session.scalar(select(LineageEdge.id).where(LineageEdge.src == src, LineageEdge.dst == dst,
                                                   LineageEdge.relation == relation)) is None:
        session.add(LineageEdge(project_id=project_id, src=src, dst=dst, relation=relation))


# --- routes ------------------------------------------------------------------------------


@router.post("", status_code=status.HTTP_201_CREATED, response_model=LabellingPublic,
             responses={404: {"description": "Dataset or version not found"}, 422: {"description": "Bad task or annotators"}})
def create_labelling(body: LabellingCreate, session: SessionDep, principal: PrincipalDep,
                     settings: SettingsDep) -> LabellingPublic:
    """Snapshot the version's rows as items and assign them; nothing is created when any row or pre-label is bad."""
    ds = _dataset(session, principal, body.dataset_id)
    principal.require(ds.project_id, "editor")
    version = _version_row(session, ds, body.version)
    if body.limit is None and version.rows > MAX_ITEMS:
        raise InvalidInput(f"the version has {version.rows} rows; a labelling project holds at most {MAX_ITEMS}: "
                           "set limit", param="limit")
    _check_annotators(session, ds.project_id, body.annotators)
    items = make_items(body.task, _store(settings).iter_rows(body.version), limit=body.limit, prelabels=body.prelabels)
    source = body.prelabel_source or (f"field:{body.prelabels}" if isinstance(body.prelabels, str) else "api")
    lp = LabelProject(id=new_id(), project_id=ds.project_id, dataset_id=ds.id, version=body.version, name=body.name,
                      task_type=body.task.type, config=body.task.model_dump(), overlap=body.overlap,
                      created_by=principal.key_id)
    rows = [LabelItem(id=new_id(), label_project_id=lp.id, row_index=it.row_index, data=it.data, prelabel=it.prelabel,
                      prelabel_source=source if it.prelabel is not None else None) for it in items]
    plan = assign([r.id for r in rows], body.annotators, body.overlap, body.seed)
    session.add(lp)
    session.flush()
    session.add_all(rows)
    session.flush()
    session.add_all(LabelAssignment(label_project_id=lp.id, item_id=i, annotator=a) for a, ids in plan.items() for i in ids)
    session.flush()
    return _public(session, lp, principal)


@router.get("", response_model=list[LabellingPublic])
def list_labelling(session: SessionDep, principal: PrincipalDep, project: str | None = None) -> list[LabellingPublic]:
    visible = [principal.resolve_project(project)] if project else list(principal.roles)
    rows = session.scalars(select(LabelProject).where(LabelProject.project_id.in_(visible))
                           .order_by(LabelProject.created_at.desc()))
    return [_public(session, lp, principal) for lp in rows]


@router.get("/{lp_id}", response_model=LabellingPublic)
def get_labelling(lp_id: str, session: SessionDep, principal: PrincipalDep) -> LabellingPublic:
    return _public(session, _label_project(session, principal, lp_id), principal)


@router.get("/{lp_id}/next", response_model=NextItem,
            responses={204: {"description": "Every item assigned to this key is annotated or skipped"},
                       403: {"description": "This key has no items in the project"}})
def next_item(lp_id: str, session: SessionDep, principal: PrincipalDep) -> NextItem | Response:
    """The caller's next unannotated item (in row order) with the pre-label, and its progress."""
    lp = _label_project(session, principal, lp_id)
    me = principal.key_id
    total = session.scalar(select(func.count()).select_from(LabelAssignment).where(
        LabelAssignment.label_project_id == lp.id, LabelAssignment.annotator == me))
    if not total:
        raise Forbidden("this key has no items to annotate in this labelling project")
    done_ids = select(LabelAnnotation.item_id).where(LabelAnnotation.label_project_id == lp.id,
                                                     LabelAnnotation.annotator == me)
    item = session.scalar(select(LabelItem).join(LabelAssignment, LabelAssignment.item_id == LabelItem.id)
                          .where(LabelAssignment.annotator == me, LabelItem.label_project_id == lp.id,
                                 LabelItem.id.not_in(done_ids)).order_by(LabelItem.row_index).limit(1))
    if item is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    done = session.scalar(select(func.count()).select_from(done_ids.subquery()))
    return NextItem(item=_item_public(item), progress=Progress(done=done or 0, total=total))


@router.get("/{lp_id}/items/{item_id}", response_model=ItemPublic)
def get_item(lp_id: str, item_id: str, session: SessionDep, principal: PrincipalDep) -> ItemPublic:
    lp = _label_project(session, principal, lp_id)
    item = session.get(LabelItem, item_id)
    if item is None or item.label_project_id != lp.id:
        raise NotFound(f"item {item_id!r} not found in labelling project {lp.name!r}")
    return _item_public(item)


@router.post("/{lp_id}/items/{item_id}/annotations", response_model=AnnotationPublic,
             status_code=status.HTTP_201_CREATED,
             responses={200: {"description": "Replaced the caller's earlier annotation"},
                        403: {"description": "Not an editor, or the item is not assigned to this key"},
                        422: {"description": "The value does not fit the task"}})
def annotate(lp_id: str, item_id: str, body: AnnotationIn, session: SessionDep, principal: PrincipalDep,
             response: Response) -> AnnotationPublic:
    """Annotate (or skip) an assigned item; annotating it again replaces the earlier answer."""
    lp = _label_project(session, principal, lp_id)
    item = session.get(LabelItem, item_id)
    if item is None or item.label_project_id != lp.id:
        raise NotFound(f"item {item_id!r} not found in labelling project {lp.name!r}")
    principal.require(lp.project_id, "editor")
    me = principal.key_id
    if session.get(LabelAssignment, (item.id, me)) is None:
        raise Forbidden("this item is not assigned to this key; GET .../next gives the caller's items")
    value = None if body.skip else validate_value(parse_task(lp.config), body.value)
    ann = session.scalar(select(LabelAnnotation).where(LabelAnnotation.item_id == item.id,
                                                       LabelAnnotation.annotator == me))
    if ann is None:
        ann = LabelAnnotation(item_id=item.id, label_project_id=lp.id, annotator=me, value=value, skipped=body.skip)
        session.add(ann)
    else:
        ann.value, ann.skipped, ann.updated_at = value, body.skip, now()
        response.status_code = status.HTTP_200_OK
    session.flush()
    return _annotation_public(ann, _key_names(session, {me}))


@router.get("/{lp_id}/annotations", response_model=list[AnnotationPublic])
def list_annotations(lp_id: str, session: SessionDep, principal: PrincipalDep,
                     offset: Annotated[int, Query(ge=0)] = 0,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[AnnotationPublic]:
    """Every annotation with who and when for editors; other members see only their own."""
    lp = _label_project(session, principal, lp_id)
    q = select(LabelAnnotation).where(LabelAnnotation.label_project_id == lp.id)
    if principal.role_in(lp.project_id) == "viewer":
        q = q.where(LabelAnnotation.annotator == principal.key_id)
    anns = list(session.scalars(q.order_by(LabelAnnotation.created_at, LabelAnnotation.id).offset(offset).limit(limit)))
    names = _key_names(session, {a.annotator for a in anns})
    return [_annotation_public(a, names) for a in anns]


@router.get("/{lp_id}/agreement")
def get_agreement(lp_id: str, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Cohen's kappa (two annotators) or Fleiss' kappa (more); per-label for multi-label; null for demonstrations."""
    lp = _label_project(session, principal, lp_id)
    _, anns = _stored(session, lp)
    return agreement(anns, parse_task(lp.config))


@router.post("/{lp_id}/export", status_code=status.HTTP_201_CREATED, response_model=VersionPublic,
             responses={422: {"description": "Nothing to export yet"}})
def export(lp_id: str, body: LabellingExport, session: SessionDep, principal: PrincipalDep,
           settings: SettingsDep) -> VersionPublic:
    """Write the decided annotations as a new dataset version in the training shape of the task."""
    lp = _label_project(session, principal, lp_id)
    principal.require(lp.project_id, "editor")
    if body.dataset_id:
        target = _dataset(session, principal, body.dataset_id)
        if target.project_id != lp.project_id:
            raise NotFound(f"dataset {body.dataset_id!r} not found in this labelling project's project")
    else:
        target = session.scalar(select(Dataset).where(Dataset.project_id == lp.project_id,
                                                      Dataset.name == f"{lp.name}-labels"))
    items, anns = _stored(session, lp)
    result = export_rows(parse_task(lp.config), items, anns, ExportPolicy(min_votes=body.min_votes))
    if not result.rows:
        raise InvalidInput(f"nothing to export yet: no item has a decided annotation ({result.counts['skipped']})")
    source = {"label_project": lp.id, "name": lp.name, "task_type": lp.task_type,
              "from": {"dataset_id": lp.dataset_id, "version": lp.version}, **result.counts}
    version = _store(settings).write_version(result.rows, text_field=result.text_field, parent=lp.version, source=source)
    if target is None:
        target = Dataset(project_id=lp.project_id, name=f"{lp.name}-labels", created_by=principal.key_id,
                         description=f"Annotations exported from labelling project {lp.name!r}.")
        session.add(target)
    session.commit()  # the dataset row must be visible to record_version's own session
    record_version(dataset_id=target.id, project_id=lp.project_id, version=version, created_by=principal.key_id,
                   job_id=None)
    label_ref = str(Ref("label_project", lp.id))
    _add_edge(session, lp.project_id, str(Ref("dataset_version", lp.version)), label_ref, "input")
    _add_edge(session, lp.project_id, label_ref, str(Ref("dataset_version", version.id)), "output")
    session.commit()
    return _version_public(version, _version_row(session, target, version.id))
