"""Pictures cost the API a bounded amount of memory (issue 12, item 5), measured as what the operating system
sees: the peak resident memory (VmHWM) of a real API process. (tracemalloc cannot see Pillow's buffers.)"""

import asyncio
import io
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from service.serving.images import DecodingBudget
from tests.helpers import add_model, launch
from tests.test_images import peak_growth_decoding

SIDES = (7999, 4999)  # 39,987,001 pixels: just under MNIST_MAX_IMAGE_PIXELS (40,000,000)
BUDGET = 200_000_000  # MNIST_MAX_DECODING_BYTES for these tests: one such RGBA picture (185 MB) at a time


def resident(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """A 40-megapixel RGBA PNG of a 1 on a transparent canvas: 4 bytes a pixel decoded, 160 KB sent."""
    picture = Image.new("RGBA", SIDES, (0, 0, 0, 0))
    width, height = SIDES
    ImageDraw.Draw(picture).line([(width // 2, height // 5), (width // 2, 4 * height // 5)], "black", width // 40)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def api(redis_url, mnist_data_dir, tmp_path_factory):
    service = launch(
        tmp_path_factory.mktemp("memory"),
        redis_url,
        mnist_data_dir,
        workers=0,
        MNIST_QUEUE_NAME="memory",
        MNIST_MAX_DECODING_BYTES=str(BUDGET),
    )
    add_model(service.model_dir)
    yield service
    service.stop()


def test_a_big_picture_is_shrunk_before_it_is_converted(big_png):
    """Decoded, the picture takes 160 MB (4 bytes a pixel); converted to grey and shrunk a band at a time, little
    more. Measured: before the fix, converting it whole grew the peak by ~470 MB; after it, by ~180 MB."""
    assert peak_growth_decoding(big_png) < 4 * SIDES[0] * SIDES[1] + 40_000_000


def predict(api, pictures: list[bytes]) -> httpx.Response:
    with httpx.Client(base_url=api.url, timeout=120) as client:
        return client.post("/predict", files=[("file", (f"{i}.png", p, "image/png")) for i, p in enumerate(pictures)])


def test_big_pictures_sent_at_once_take_the_decoding_budget_and_no_more(api, big_png):
    """Four requests at once, each with two pictures of 40 megapixels (RGBA). Measured on the same machine: before
    the fix, the API's peak resident memory grew by 1.86 GB (over the 415 MB it kept after a first such picture);
    after it, by 230-240 MB (over 300 MB): a picture takes 185 MB, one at a time within the 200 MB budget, and
    serving the four requests the rest."""
    pid = api.processes[0].popen.pid
    assert predict(api, [big_png]).status_code == 200  # warm: the model loaded, the first allocations made
    reset_peak(pid)
    before = resident(pid)["VmRSS"]
    answers = []
    senders = [threading.Thread(target=lambda: answers.append(predict(api, [big_png, big_png]))) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(300)
    assert [answer.status_code for answer in answers] == [200] * 4, [answer.text for answer in answers]
    assert all(len(answer.json()["predictions"]) == 2 for answer in answers)  # an untrained model's digits
    growth = resident(pid)["VmHWM"] - before
    print(f"peak resident memory growth: {growth / 1e6:.0f} MB")
    assert growth < BUDGET + 80_000_000, f"the API's peak resident memory grew by {growth / 1e6:.0f} MB"


def test_a_request_may_hold_so_many_pixels_and_no_more(api, big_png):
    """Three pictures of 40 megapixels are over MNIST_MAX_REQUEST_PIXELS (100 million) together: refused before
    any is decoded."""
    pid = api.processes[0].popen.pid
    reset_peak(pid)
    before = resident(pid)["VmRSS"]
    answer = predict(api, [big_png] * 3)
    assert answer.status_code == 413
    assert answer.json()["detail"] == (
        "the pictures hold 119961003 pixels together (as they are decoded); the limit for one request is 100000000"
    )
    assert resident(pid)["VmHWM"] - before < 30_000_000


def test_the_decoding_budget_lets_requests_in_as_they_fit_in_order_of_arrival():
    async def scenario() -> list[str]:
        budget, events = DecodingBudget(100), []

        async def decode(name: str, cost: int, seconds: float) -> None:
            async with budget.reserve(cost):
                events.append(f"{name} in ({budget.in_use})")
                await asyncio.sleep(seconds)
            events.append(f"{name} out")

        first = asyncio.create_task(decode("a", 60, 0.05))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(decode("b", 60, 0.01))  # waits for a
        await asyncio.sleep(0.01)
        third = asyncio.create_task(decode("c", 30, 0.01))  # would fit beside a, but b came first
        abandoned = asyncio.create_task(decode("d", 100, 0.01))
        await asyncio.sleep(0.01)
        abandoned.cancel()  # its client left while it waited: it gives back its place
        await asyncio.gather(first, second, third, return_exceptions=True)
        huge = asyncio.create_task(decode("e", 500, 0.01))  # more than the whole budget: alone
        await huge
        assert budget.in_use == 0
        return events

    assert asyncio.run(scenario()) == [
        "a in (60)",
        "a out",
        "b in (90)",
        "c in (90)",
        "b out",
        "c out",
        "e in (100)",
        "e out",
    ]
