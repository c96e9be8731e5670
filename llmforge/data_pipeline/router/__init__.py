"""HTTP edges of the data pipeline: datasets and pipelines (``datasets.py``) and labelling (``labelling.py``)."""

from llmforge.data_pipeline.router.datasets import UPLOAD_PATH
from llmforge.data_pipeline.router.datasets import router as datasets_router
from llmforge.data_pipeline.router.datasets import steps_router
from llmforge.data_pipeline.router.labelling import router as labelling_router

ROUTERS = [datasets_router, steps_router, labelling_router]

__all__ = ["ROUTERS", "UPLOAD_PATH"]
