"""The body of every error answer."""

from typing import Any

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="What is wrong, naming the field, file or limit: a sentence; or, for a body that does not "
        "fit the schema, FastAPI's list of errors, each naming its field in `loc`."
    )
