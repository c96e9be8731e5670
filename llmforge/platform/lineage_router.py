"""Lineage over REST: the graph of edges (input → job → output) around any reference.

``GET /api/v1/lineage?ref=dataset_version:<id>&direction=upstream`` walks the
recorded edges back to the raw uploads (``downstream`` walks forward, ``both``
does both). Only edges of projects the key belongs to are followed.
"""

from __future__ import annotations

from collections import deque
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import or_, select

from llmforge.errors import InvalidInput, NotFound
from llmforge.lineage import Ref
from llmforge.platform.deps import PrincipalDep, SessionDep
from llmforge.platform.models import LineageEdge

router = APIRouter(prefix="/lineage", tags=["lineage"])


class Node(BaseModel):
    ref: str
    kind: str
    id: str


class Edge(BaseModel):
    src: str
    dst: str
    relation: str
    job_id: str | None


class Graph(BaseModel):
    root: str
    nodes: list[Node]
    edges: list[Edge]


@router.get("", response_model=Graph)
def lineage(
    session: SessionDep,
    principal: PrincipalDep,
    ref: Annotated[str, Query(description="A reference like dataset_version:<id> or job:<id>.")],
    direction: Literal["upstream", "downstream", "both"] = "upstream",
    max_nodes: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Graph:
    try:
        root = str(Ref.parse(ref))
    except ValueError as exc:
        raise InvalidInput(str(exc), param="ref") from None
    visible = list(principal.roles)
    seen, edges, queue = {root}, {}, deque([root])
    while queue and len(seen) < max_nodes:
        node = queue.popleft()
        conds = []
        if direction in ("upstream", "both"):
            conds.append(LineageEdge.dst == node)
        if direction in ("downstream", "both"):
            conds.append(LineageEdge.src == node)
        for e in session.scalars(select(LineageEdge).where(or_(*conds), LineageEdge.project_id.in_(visible))):
            edges[e.id] = e
            for nxt in (e.src, e.dst):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
    if not edges:
        raise NotFound(f"no lineage recorded for {root} in a project this key can see")
    nodes = [Node(ref=r, kind=Ref.parse(r).kind, id=Ref.parse(r).id) for r in sorted(seen)]
    return Graph(root=root, nodes=nodes,
                 edges=[Edge(src=e.src, dst=e.dst, relation=e.relation, job_id=e.job_id)
                        for e in sorted(edges.values(), key=lambda e: e.id)])
