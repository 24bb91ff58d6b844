"""POST /predict over real HTTP: the API in the test process serving the session's trained model, pictures sent
as users send them, and every documented error."""

import base64
import io
import re
import socket
import struct
import zlib
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps

from service.api.app import create_app
from service.domain.mnist import load_mnist
from service.domain.model_store import load_network
from tests.helpers import serve, wait_for_job

DIGITS = 500  # the first 500 test-set digits: every kind of picture 166 times or more
PER_REQUEST = 100  # pictures per request, as `file` parts


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def service(shared_settings):
    """The API on the shared store, for the whole module: its tests read, and one trains through the session's
    worker."""
    with serve(create_app(shared_settings)) as server:
        yield server


@pytest.fixture(scope="module")
def test_set(mnist_data_dir) -> tuple[np.ndarray, np.ndarray]:
    mnist = load_mnist(mnist_data_dir)
    return mnist.test_images[:DIGITS], mnist.test_labels[:DIGITS]


@pytest.fixture(scope="module")
def network_probabilities(service, trained_model, test_set) -> np.ndarray:
    """The model's own answers on the raw test arrays, loaded from its safetensors as the API loads it."""
    network, _ = load_network(service.model_dir, trained_model)
    with torch.inference_mode():
        logits = network(torch.tensor(test_set[0], dtype=torch.float32).div(255).unsqueeze(1))
    return torch.softmax(logits, dim=1).numpy()


def predicted_digits(service, model_id: str, pictures: list[tuple[str, bytes]]) -> np.ndarray:
    """The API's digits for `pictures` (file name, bytes), uploaded PER_REQUEST at a time."""
    digits = []
    with service.client() as client:
        for start in range(0, len(pictures), PER_REQUEST):
            batch = pictures[start : start + PER_REQUEST]
            response = client.post("/predict", params={"model_id": model_id}, files=[("file", p) for p in batch])
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["model_id"] == model_id and len(answer["predictions"]) == len(batch)
            digits += [prediction["digit"] for prediction in answer["predictions"]]
    return np.array(digits)


@pytest.fixture(scope="module")
def png_accuracy(service, trained_model, test_set) -> float:
    images, labels = test_set
    pictures = [(f"{index}.png", encode(Image.fromarray(image))) for index, image in enumerate(images)]
    return float((predicted_digits(service, trained_model, pictures) == labels).mean())


def test_mnist_digits_as_png_uploads_score_what_the_model_scores(png_accuracy, network_probabilities, test_set):
    own_accuracy = float((network_probabilities.argmax(1) == test_set[1]).mean())
    print(
        f"\n(a) {DIGITS} MNIST test digits as PNG uploads: {png_accuracy:.2%} through /predict, "
        f"{own_accuracy:.2%} from the network on the raw arrays"
    )
    assert abs(png_accuracy - own_accuracy) <= 0.005


def as_a_user_would_send(digit: np.ndarray, index: int, rng: np.random.Generator) -> tuple[str, bytes]:
    """The digit drawn 200-400 px tall, dark on white, off-centre on a larger canvas; every third one as RGBA
    ink on a transparent background, every third as a JPEG."""
    side = int(rng.integers(200, 401))
    ink = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    width, height = (side + int(rng.integers(80, 400)) for _ in range(2))
    offset = (int(rng.integers(0, width - side)), int(rng.integers(0, height - side)))
    if index % 3 == 1:
        stroke = Image.new("RGBA", (side, side), (20, 20, 60, 255))
        stroke.putalpha(ink)
        canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        canvas.paste(stroke, offset)
        return f"{index}.png", encode(canvas)
    canvas = Image.new("L", (width, height), 255)
    canvas.paste(ImageOps.invert(ink), offset)
    if index % 3 == 2:
        return f"{index}.jpg", encode(canvas.convert("RGB"), "JPEG", quality=85)
    return f"{index}.png", encode(canvas)


def test_digits_drawn_as_users_draw_them_score_nearly_as_well(service, trained_model, test_set, png_accuracy):
    images, labels = test_set
    rng = np.random.default_rng(0)
    pictures = [as_a_user_would_send(image, index, rng) for index, image in enumerate(images)]
    accuracy = float((predicted_digits(service, trained_model, pictures) == labels).mean())
    print(
        f"\n(b) the same digits drawn 200-400 px, dark on white, off-centre, 1/3 RGBA, 1/3 JPEG: {accuracy:.2%} "
        f"(PNG uploads: {png_accuracy:.2%})"
    )
    assert abs(accuracy - png_accuracy) <= 0.03


def test_single_and_batch_answers_agree_and_pixels_are_used_as_sent(
    service, trained_model, test_set, network_probabilities
):
    images = test_set[0][:6]
    pngs = [encode(Image.fromarray(image)) for image in images]
    query = {"model_id": trained_model}
    with service.client() as client:

        def probabilities(**request) -> list[list[float]]:
            response = client.post("/predict", params=query, **request)
            assert response.status_code == 200, response.text
            predictions = response.json()["predictions"]
            for p in predictions:
                assert p["digit"] == int(np.argmax(p["probabilities"])) and p["confidence"] == max(p["probabilities"])
                assert len(p["probabilities"]) == 10 and sum(p["probabilities"]) == pytest.approx(1, abs=1e-5)
            return [p["probabilities"] for p in predictions]

        uploads = [probabilities(files={"file": ("d.png", png)})[0] for png in pngs]
        base64_images = [probabilities(json={"image": b64(png)})[0] for png in pngs]
        data_url = probabilities(json={"image": f"data:image/png;base64,{b64(pngs[0])}"})[0]
        pixels = [probabilities(json={"pixels": image.tolist()})[0] for image in images]
        flat_unit_pixels = [
            probabilities(json={"pixels": (image.ravel() / 255).tolist(), "scale": "1"})[0] for image in images
        ]
        multi_file = probabilities(files=[("file", (f"{i}.png", png)) for i, png in enumerate(pngs)])
        mixed = [
            {"image": b64(png)} if i % 2 else {"pixels": image.tolist()}
            for i, (png, image) in enumerate(zip(pngs, images, strict=True))
        ]
        instances = probabilities(json={"instances": mixed})

    def same(a, b) -> None:  # one forward pass or several: float sums in another order
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-6)

    same(multi_file, uploads)
    same(base64_images, uploads)
    same(data_url, uploads[0])
    same(flat_unit_pixels, pixels)
    same(instances, [uploads[i] if i % 2 else pixels[i] for i in range(len(images))])
    # Pixel grids skip the picture preprocessing: the answer is the network's own on that array.
    same(pixels, network_probabilities[: len(images)])


def seen_image(prediction: dict) -> np.ndarray:
    """The 28x28 image a prediction says the model saw, from its PNG data: URL."""
    media_type, _, data = prediction["image"].partition(",")
    assert media_type == "data:image/png;base64"
    picture = Image.open(io.BytesIO(base64.b64decode(data)))
    assert (picture.format, picture.mode, picture.size) == ("PNG", "L", (28, 28))
    return np.asarray(picture)


def test_each_input_form_can_return_the_image_the_model_saw(service, trained_model, test_set):
    digits = test_set[0][:3]
    drawn = digit_png()  # a 1, dark on white, 120x160: the model sees it light on black, centred, 20 px tall
    query = {"model_id": trained_model}
    with service.client() as client:

        def predictions(params=query, **request) -> list[dict]:
            response = client.post("/predict", params=params, **request)
            assert response.status_code == 200, response.text
            return response.json()["predictions"]

        plain = predictions(json={"image": b64(drawn)})
        asked = {**query, "return_image": "true"}
        seen_upload = predictions(asked, files={"file": ("one.png", drawn)})
        seen_base64 = predictions(asked, json={"image": f"data:image/png;base64,{b64(drawn)}"})
        seen_pixels = predictions(asked, json={"pixels": digits[0].tolist()})
        seen_batch = predictions(
            asked, json={"instances": [{"pixels": d.tolist()} for d in digits] + [{"image": b64(drawn)}]}
        )
        sent_back = predictions(json={"pixels": seen_image(seen_upload[0]).tolist()})
        refused = client.post("/predict", params={"return_image": "maybe"}, json={"pixels": ROWS})

    assert set(plain[0]) == {"digit", "confidence", "probabilities"}  # not asked: the answer is as it always was
    assert all(set(p) == {"digit", "confidence", "probabilities", "image"} for p in seen_batch)
    one = seen_image(seen_upload[0])
    rows, columns = np.nonzero(one > 127)
    assert rows.min() >= 4 and rows.max() <= 23 and columns.min() >= 10 and columns.max() <= 17  # a centred bar
    assert one[0].max() == 0 and one[:, 0].max() == 0  # black around it: light ink on black, as MNIST's
    assert np.array_equal(seen_image(seen_base64[0]), one)
    assert np.array_equal(seen_image(seen_batch[3]), one)
    assert np.array_equal(seen_image(seen_pixels[0]), digits[0])  # a pixel grid is seen as sent
    assert [seen_image(p).tolist() for p in seen_batch[:3]] == [d.tolist() for d in digits]
    # What the model saw, sent back as pixels, is read exactly as the picture was.
    np.testing.assert_allclose(sent_back[0]["probabilities"], seen_upload[0]["probabilities"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(plain[0]["probabilities"], seen_upload[0]["probabilities"], rtol=1e-4, atol=1e-6)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "return_image"]


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few bytes whose header declares `width` x `height`: a decompression bomb."""
    small = encode(Image.new("L", (1, 1)))
    header = b"IHDR" + struct.pack(">II", width, height) + small[24:29]  # then depth, colour type, ...
    return small[:8] + struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header)) + small[33:]


def multipart(*parts: bytes) -> dict:
    """A hand-made multipart body, for shapes that httpx will not build."""
    body = b"".join(b"--b\r\n" + part + b"\r\n" for part in parts) + b"--b--\r\n"
    return {"content": body, "headers": {"content-type": "multipart/form-data; boundary=b"}}


def chunks(total: int):
    """A body sent chunked (no Content-Length), in 1 MiB pieces."""
    for start in range(0, total, 2**20):
        yield b"x" * min(2**20, total - start)


def blank() -> bytes:
    return encode(Image.new("RGB", (200, 150), "white"))


def digit_png() -> bytes:
    image = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(image).line([(60, 20), (60, 140)], fill=0, width=14)
    return encode(image)


ROWS = [[0] * 28 for _ in range(28)]
OVER = 8 * 1024 * 1024 + 1
BAD_REQUESTS = {
    # name: (request, status, what the detail must say)
    "not multipart nor JSON": (
        {"content": b"7", "headers": {"content-type": "text/plain"}},
        415,
        "multipart/form-data",
    ),
    "multipart without parts": (multipart(), 422, "no `file` part"),
    "multipart without a file part": ({"files": {"picture": ("d.png", digit_png())}}, 422, "unexpected part 'picture'"),
    "a text field named file": (
        multipart(b'Content-Disposition: form-data; name="file"\r\n\r\nseven'),
        422,
        "file: is a text field",
    ),
    "malformed multipart": (
        {"content": b"junk", "headers": {"content-type": "multipart/form-data"}},
        422,
        "multipart body",
    ),
    "not a picture": ({"files": {"file": ("d.png", b"hello")}}, 415, "file 'd.png': cannot decode image"),
    "an empty file": ({"files": {"file": ("d.png", b"")}}, 415, "empty file"),
    "a truncated PNG": ({"files": {"file": ("d.png", digit_png()[:120])}}, 415, "cannot decode image"),
    "a blank picture": ({"files": {"file": ("d.png", blank())}}, 422, "no digit found"),
    "a second file is bad": (
        {"files": [("file", ("a.png", digit_png())), ("file", ("b.gif", b"GIF89a"))]},
        415,
        "file[1] 'b.gif': cannot decode image",
    ),
    "a decompression bomb (declared 100k x 100k)": (
        {"files": {"file": ("bomb.png", png_declaring(10**5, 10**5))}},
        413,
        "the limit is 40000000",
    ),
    "a picture over the pixel limit": (
        {"files": {"file": ("big.png", png_declaring(8000, 6000))}},
        413,
        "8000x6000 = 48000000 pixels; the limit is 40000000",
    ),
    "257 files": ({"files": [("file", (f"{i}.png", b"")) for i in range(257)]}, 422, "Maximum number of files is 256"),
    "a file over the body limit": ({"files": {"file": ("d.png", b"x" * OVER)}}, 413, "over the limit of 8388608 bytes"),
    "a chunked body over the limit": (
        {"content": chunks(OVER), "headers": {"content-type": "application/json"}},
        413,
        "over the limit of 8388608 bytes",
    ),
    "malformed JSON": (
        {"content": b'{"pixels": [', "headers": {"content-type": "application/json"}},
        422,
        "Invalid JSON",
    ),
    "JSON without an input": ({"json": {"digits": []}}, 422, 'body: give "pixels", "image" or "instances"'),
    "783 pixels": ({"json": {"pixels": [0] * 783}}, 422, "pixels must be 784 values or 28 rows of 28; got 783 values"),
    "a short row": ({"json": {"pixels": [*ROWS[:5], [0] * 27, *ROWS[6:]]}}, 422, "row 5 has 27 values"),
    "a pixel over 255": (
        {"json": {"pixels": [0] * 700 + [256] + [0] * 83}},
        422,
        "within 0..255; found 256 at row 25, column 0",
    ),
    "a negative pixel": ({"json": {"pixels": [-1] + [0] * 783}}, 422, "within 0..255; found -1"),
    "a pixel over 1 with scale 1": ({"json": {"pixels": [2] * 784, "scale": "1"}}, 422, "within 0..1"),
    "a pixel that is a string": ({"json": {"pixels": ["12"] * 784}}, 422, "pixel values must be numbers"),
    "an unknown scale": ({"json": {"pixels": [0] * 784, "scale": "100"}}, 422, "body.pixels.scale"),
    "pixels and image at once": ({"json": {"pixels": [0] * 784, "image": ""}}, 422, "body.pixels.image"),
    "image not base64": ({"json": {"image": "not base64!"}}, 422, "body.image.image: Value error, not valid base64"),
    "image is base64 of no picture": (
        {"json": {"image": b64(b"hello")}},
        415,
        "cannot decode image: not a recognised image format",
    ),
    "image is blank": ({"json": {"image": b64(blank())}}, 422, "no digit found"),
    "no instances": ({"json": {"instances": []}}, 422, "body.instances.instances"),
    "257 instances": (
        {"json": {"instances": [{"pixels": [0] * 784}] * 257}},
        422,
        "instances: at most 256 per request; got 257",
    ),
    "an instance without input": (
        {"json": {"instances": [{"pixels": [0] * 784}, {}]}},
        422,
        'body.instances.instances.1: give "pixels" or "image"',
    ),
    "a bad second instance": (
        {"json": {"instances": [{"pixels": [0] * 784}, {"pixels": [0] * 10}]}},
        422,
        "instances[1]: pixels must be 784 values",
    ),
}


def describe(detail) -> str:
    """A detail as one string: a sentence as it is; FastAPI's list of errors as `loc: msg; ...`."""
    if isinstance(detail, str):
        return detail
    return "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in detail)


@pytest.mark.parametrize("request_kwargs, status, message", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_bad_request_gets_its_status_and_a_message_naming_the_problem(
    service, trained_model, request_kwargs, status, message
):
    with service.client() as client:
        response = client.post("/predict", params={"model_id": trained_model}, **request_kwargs)
    assert response.status_code == status, response.text
    assert message in describe(response.json()["detail"])


@pytest.mark.parametrize(
    "model_id, status",
    [("20200101T000000Z-00000000", 404), ("../../etc/passwd", 422), ("..%2F..%2Fetc", 422), ("latest", 422)],
)
def test_an_unknown_or_malformed_model_id(service, trained_model, model_id, status):
    with service.client() as client:
        response = client.post("/predict", params={"model_id": model_id}, json={"pixels": ROWS})
    assert response.status_code == status
    assert "model" in describe(response.json()["detail"])


def test_an_oversized_body_is_refused_from_its_headers_before_it_is_sent(service):
    """Headers that announce 100 MB, and not one byte of body: the answer comes at once."""
    address = urlsplit(service.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        answer = receive_response(connection).decode()
    assert answer.startswith("HTTP/1.1 413") and "over the limit of 8388608 bytes" in answer


def receive_response(connection: socket.socket) -> bytes:
    """One HTTP response: its head, then the body its Content-Length announces (or all until the server closes)."""
    answer = b""
    while b"\r\n\r\n" not in answer and (chunk := connection.recv(4096)):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)\r?$", head)
    while (length is None or len(body) < int(length[1])) and (chunk := connection.recv(4096)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_the_body_limit_guards_every_route(service):
    with service.client() as client:
        response = client.post("/jobs", content=chunks(OVER), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]


@pytest.mark.parametrize(
    "fmt, mode", [("PNG", "P"), ("JPEG", "CMYK"), ("GIF", "L"), ("BMP", "RGB"), ("WEBP", "RGBA"), ("TIFF", "I;16")]
)
def test_every_supported_format_and_mode_is_read(service, trained_model, fmt, mode):
    """A thick vertical stroke, a 1, in each format Pillow decodes for us."""
    picture = Image.open(io.BytesIO(digit_png())).convert("RGB" if mode == "I;16" else mode)
    if mode == "I;16":
        picture = Image.fromarray(np.asarray(picture.convert("L"), dtype=np.uint16) * 257)
    with service.client() as client:
        response = client.post(
            "/predict", params={"model_id": trained_model}, files={"file": (f"one.{fmt.lower()}", encode(picture, fmt))}
        )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["digit"] == 1


def test_a_model_trained_while_the_api_runs_serves_at_once_but_is_the_default_only_if_its_job_asks(
    service, worker, trained_model
):
    with service.client() as client:
        assert client.post("/predict", json={"pixels": ROWS}).status_code == 200  # the API already serves a model
        default = client.get("/models").json()["default"]
        trial = wait_for_job(client, client.post("/jobs", json={"train_batches": 10, "seed": 3}).json()["id"])
        assert trial["status"] == "succeeded", worker.output()
        listing = client.get("/models").json()
        served = client.post("/predict", json={"pixels": ROWS}).json()
        named = client.post("/predict", params={"model_id": trial["model_id"]}, json={"pixels": ROWS}).json()
        metadata = client.get(f"/models/{trial['model_id']}").json()

        wanted = wait_for_job(
            client, client.post("/jobs", json={"train_batches": 10, "seed": 4, "make_default": True}).json()["id"]
        )
        assert wanted["status"] == "succeeded", worker.output()
        now = client.get("/models").json()["default"]
        served_now = client.post("/predict", json={"pixels": ROWS}).json()
        client.post(f"/models/{default['model_id']}/default")  # the session's other tests keep their default
    assert listing["models"][0]["id"] == trial["model_id"]
    assert listing["default"] == default and served["model_id"] == default["model_id"] != trial["model_id"]
    assert named["model_id"] == trial["model_id"]
    assert metadata["job_id"] == trial["id"] and metadata["config"]["train_batches"] == 10
    assert now == {"model_id": wanted["model_id"], "chosen": True, "reason": None}
    assert served_now["model_id"] == wanted["model_id"]
