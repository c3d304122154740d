"""Deal pipelines: the Pipelines API (CRM v3) and the stage each deal is in.

``GET /crm/v3/pipelines/deals`` (``client.crm.pipelines.pipelines_api.get_all("deals")``) lists
the portal's pipelines with their stages; a stage's ``metadata`` says whether it closes a deal
(``isClosed``) and its win ``probability`` ("1.0" won, "0.0" lost), as strings:
https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/guide. Every portal has the
default pipeline (id "default", stages appointmentscheduled ... closedwon / closedlost); the
``pipeline="custom"`` option puts every deal in a second pipeline whose ids are numeric, as a
pipeline an admin creates gets them. Deals also carry HubSpot's calculated ``hs_is_closed`` and
``hs_is_closed_won``, read from their stage's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from sandbox.http import Request, Response, Route, json_response
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.values import format_timestamp

__all__ = ["PIPELINES", "Pipeline", "PipelineRoutes", "Stage", "staged"]

_CREATED = datetime(2019, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline."""

    id: str
    label: str
    probability: float

    @property
    def closed(self) -> bool:
        """Won and lost stages close a deal (probability 1.0 and 0.0)."""
        return self.probability in (0.0, 1.0)


@dataclass(frozen=True)
class Pipeline:
    """A deal pipeline: id, label and its stages in order (the org's seven, by position)."""

    id: str
    label: str
    stages: tuple[Stage, ...]


# HubSpot's default sales pipeline, with its default win probabilities
_DEFAULT = Pipeline(
    "default",
    "Sales Pipeline",
    (
        Stage("appointmentscheduled", "Appointment Scheduled", 0.2),
        Stage("qualifiedtobuy", "Qualified To Buy", 0.4),
        Stage("presentationscheduled", "Presentation Scheduled", 0.6),
        Stage("decisionmakerboughtin", "Decision Maker Bought-In", 0.8),
        Stage("contractsent", "Contract Sent", 0.9),
        Stage("closedwon", "Closed Won", 1.0),
        Stage("closedlost", "Closed Lost", 0.0),
    ),
)
_CUSTOM = Pipeline(
    "75421890",
    "New Business",
    tuple(
        Stage(str(75421891 + n), label, probability)
        for n, (label, probability) in enumerate(
            [
                ("Discovery", 0.1),
                ("Qualified", 0.3),
                ("Demo Done", 0.5),
                ("Proposal Sent", 0.7),
                ("Negotiation", 0.9),
                ("Won", 1.0),
                ("Lost", 0.0),
            ]
        )
    ),
)
# option -> (the pipelines the portal has, the one its deals are in)
PIPELINES: dict[str, tuple[tuple[Pipeline, ...], Pipeline]] = {
    "default": ((_DEFAULT,), _DEFAULT),
    "custom": ((_DEFAULT, _CUSTOM), _CUSTOM),
}


def staged(deals: pl.DataFrame, pipeline: Pipeline) -> pl.DataFrame:
    """Deals moved into ``pipeline`` (same stage by position), with hs_is_closed(_won)."""
    moved = {old.id: new for old, new in zip(_DEFAULT.stages, pipeline.stages, strict=True)}
    stage = pl.col("dealstage")
    return deals.with_columns(
        dealstage=stage.replace_strict({k: v.id for k, v in moved.items()}, default=None),
        pipeline=pl.when(stage.is_not_null()).then(pl.lit(pipeline.id)),
        hs_is_closed=stage.replace_strict({k: v.closed for k, v in moved.items()}, default=None),
        hs_is_closed_won=stage.replace_strict(
            {k: v.probability == 1.0 for k, v in moved.items()}, default=None
        ),
    )


def _stage_json(stage: Stage, order: int) -> dict[str, Any]:
    return {
        "id": stage.id,
        "label": stage.label,
        "displayOrder": order,
        "metadata": {"isClosed": str(stage.closed).lower(), "probability": str(stage.probability)},
        "createdAt": format_timestamp(_CREATED),
        "updatedAt": format_timestamp(_CREATED),
        "archived": False,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    }


def _pipeline_json(pipeline: Pipeline, order: int) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "label": pipeline.label,
        "displayOrder": order,
        "stages": [_stage_json(s, n) for n, s in enumerate(pipeline.stages)],
        "createdAt": format_timestamp(_CREATED),
        "updatedAt": format_timestamp(_CREATED),
        "archived": False,
    }


class PipelineRoutes:
    """Handlers of /crm/v3/pipelines/deals[/{id}] (deals are the object with pipelines here)."""

    def __init__(self, pipelines: tuple[Pipeline, ...]) -> None:
        self.pipelines = {p.id: _pipeline_json(p, n) for n, p in enumerate(pipelines)}

    def routes(self) -> list[Route]:
        """Every pipeline, and one by id."""
        deals = r"/crm/v3/pipelines/(?i:deals|deal|0-3)"
        return [
            Route("GET", deals + "/?", "pipelines/deals", self.all),
            Route("GET", deals + r"/(?P<id>[^/]+)", "pipelines/deals/{id}", self.one),
        ]

    def all(self, request: Request) -> Response:
        """``{"results": [pipeline, ...]}``."""
        return json_response(200, {"results": list(self.pipelines.values())})

    def one(self, request: Request) -> Response:
        """One pipeline, or HubSpot's 404."""
        found = self.pipelines.get(request.params["id"])
        if found is None:
            raise HubSpotError(
                404, f"Unable to find pipeline {request.params['id']}", category="OBJECT_NOT_FOUND"
            )
        return json_response(200, found)
