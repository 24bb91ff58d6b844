"""What the fuzz tests share: the pictures schemathesis sends where the schema asks for files, and the operations
whose 503 is an answer."""

import base64
import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.transport.serialization import Binary

from service.serving.images import FORMATS

# The readiness probes answer 503 while not ready, as they declare: that is their answer, not a fault. Under the
# fuzz tests there is no worker (/readyz), and the fuzzing may delete the only model (/v2/health/ready).
READINESS_PROBES = ("/readyz", "/v2/health/ready")


@st.composite
def pictures(draw) -> bytes:
    """A picture of a stroke, dark on light, in one of the formats that /predict reads: a digit to it."""
    width, height = draw(st.integers(8, 64)), draw(st.integers(8, 64))
    stroke = max(1, round(width * draw(st.floats(0.1, 0.5))))
    image = Image.new("L", (width, height), 255)
    image.paste(0, (width // 4, height // 4, width // 4 + stroke, height * 3 // 4))
    data = io.BytesIO()
    image.save(data, format=draw(st.sampled_from(FORMATS)))
    return data.getvalue()


def register_pictures() -> None:
    """Pictures where the schema asks for files (`file` parts, `format: binary`) and base64 (`image` fields,
    `format: byte`): the schema cannot say that the bytes must be a picture, and the API refuses others."""
    schemathesis.openapi.format("binary", pictures().map(Binary))
    schemathesis.openapi.format("byte", pictures().map(lambda data: base64.b64encode(data).decode()))
