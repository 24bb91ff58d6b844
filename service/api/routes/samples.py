"""MNIST test digits, with their labels: what the dashboard's gallery shows the model."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from service.api.deps import SettingsDep
from service.domain.mnist import TEST_SIZE, DataError, load_mnist
from service.schemas.dashboard import Sample, SampleList

router = APIRouter(prefix="/samples", tags=["samples"])


@router.get("", response_model=SampleList, responses={503: {"description": "The MNIST files are not here"}})
def list_samples(
    settings: SettingsDep,
    count: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, lt=TEST_SIZE)] = 0,
) -> SampleList:
    """`count` digits of the test set from `offset` on (fewer at its end), as pixel grids ready for `/predict`."""
    try:
        mnist = load_mnist(settings.data_dir)  # verified and cached once per process
    except DataError as error:
        raise HTTPException(503, str(error)) from None
    images = mnist.test_images[offset : offset + count]
    labels = mnist.test_labels[offset : offset + count]
    return SampleList(
        samples=[
            Sample(index=offset + i, label=int(label), pixels=image.ravel().tolist())
            for i, (image, label) in enumerate(zip(images, labels, strict=True))
        ]
    )
