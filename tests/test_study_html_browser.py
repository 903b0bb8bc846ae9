"""The study's report.html in a real headless browser (Debian's chromium): it loads from disk with no console error
and no other file or network fetch, and every plot is present, decoded by the browser and not blank.

Skips when chromium is not installed (`.ci/run` installs it).
"""

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_study_pick import build_tiny_study

from tflkit.study.report import write_study_report

CHROMIUM = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

# Runs in a copy of the report only (the report itself has no script): for each plot, whether the browser decoded it
# and how many distinct colours it drew on a canvas; and one deliberate console.error, so the test knows its console
# check would see an error if the report raised one.
PROBE = """<script>
window.addEventListener("load", () => {
  for (const img of document.querySelectorAll("img.plot")) {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const colours = new Set();
    if (canvas.width && canvas.height) {
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length && colours.size < 50; i += 4 * 97) colours.add(data.slice(i, i + 4).join());
    }
    img.setAttribute("data-probe", `${img.complete} ${img.naturalWidth} ${img.naturalHeight} ${colours.size}`);
  }
  console.error("tflkit-probe");
});
</script>"""


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def _images(page: str) -> list[dict]:
    parser = _Images()
    parser.feed(page)
    return parser.images


def _chromium(page: Path, profile: Path, *extra: str) -> tuple[str, str]:
    """(DOM after load, log) of a headless chromium that opened `page`; its own profile so parallel runs never share."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr",
         "--v=1", *extra, "--dump-dom", page.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _console(log: str) -> list[str]:
    return re.findall(r":CONSOLE[^\]]*\] (.*)", log)


def _fetched(log: str) -> list[str]:
    """Every URL the page's loaders started: files, and any network request."""
    files = re.findall(r"FileURLLoader::Start: (\S+)", log)
    network = re.findall(r"\b(?:URLLoader|url_loader)[^\n]*?(https?://\S+)", log)
    return files + network


def _colours(png: bytes) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(image.getcolors(maxcolors=1 << 20) or [])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    build_tiny_study(out)
    return write_study_report(out, log=lambda *_: None)["html"]


def test_report_loads_with_no_console_error_and_fetches_nothing(report, tmp_path):
    shot = tmp_path / "page.png"
    dom, log = _chromium(report, tmp_path / "profile", "--window-size=1400,2400", f"--screenshot={shot}")
    assert _console(log) == []
    assert _fetched(log) == [report.resolve().as_uri()]  # the report itself, nothing else
    assert "Claims" in dom and "Results" in dom and "Provenance" in dom

    plots = [img for img in _images(dom) if img.get("class") == "plot"]
    assert len(plots) == len(_images(report.read_text())) >= 6
    for img in plots:
        kind, _, data = img["src"].partition(",")
        assert kind == "data:image/png;base64", img["alt"]
        assert _colours(base64.b64decode(data)) > 10, f"plot {img['alt']!r} is blank"

    from PIL import Image

    page = Image.open(shot).convert("RGB")
    assert page.size == (1400, 2400)
    assert len(page.getcolors(maxcolors=1 << 20) or []) > 10  # rendered, not a blank page


def test_every_plot_is_decoded_and_drawn_by_the_browser(report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom, log = _chromium(probed, tmp_path / "profile")
    assert [m.split(",")[0] for m in _console(log)] == ['"tflkit-probe"']  # the console check sees errors
    plots = [img for img in _images(dom) if img.get("class") == "plot"]
    assert plots
    for img in plots:
        complete, width, height, colours = img["data-probe"].split()
        assert complete == "true" and int(width) > 100 and int(height) > 100, img["alt"]
        assert int(colours) > 1, f"plot {img['alt']!r} drew blank in the browser"
