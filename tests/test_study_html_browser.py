"""The study's report.html in a real headless browser (Debian's chromium): it loads from disk with no console error
and no other file or network fetch, and every plot is present, decoded by the browser and not blank; the answer is
the first thing after the title, a model has one colour in every plot's key, nothing overflows the page sideways at
1400 px (every collapsed section opened), and the page shows no path of this machine and no Markdown backtick.

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
from tflkit.study.store import open_store

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


# Runs in a copy of the report: what follows the title, and the page's width against the window's before and after
# every <details> is opened (the wide results table must scroll inside its own box, not the page).
LAYOUT = """<script>
window.addEventListener("load", () => {
  const body = document.body, root = document.documentElement;
  const first = document.querySelector("h1").nextElementSibling;
  body.setAttribute("data-first", first ? `${first.tagName.toLowerCase()}#${first.id}` : "none");
  body.setAttribute("data-first-text", first ? first.textContent.trim() : "");
  body.setAttribute("data-closed", `${root.scrollWidth} ${root.clientWidth} ${window.innerWidth}`);
  for (const details of document.querySelectorAll("details")) details.open = true;
  body.setAttribute("data-open", `${root.scrollWidth} ${root.clientWidth}`);
});
</script>"""


class _Text(HTMLParser):
    """The page's text (no style or script) and every element's attributes."""

    def __init__(self):
        super().__init__()
        self.text, self.elements, self._skip = [], [], 0

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _parsed(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    return parser


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
    with open_store(out) as store:  # paths a real run records: data and weights elsewhere, files inside the study
        store.set_meta("paths", {"data_dir": "/root/.cache/tflkit-data", "weights": "/home/someone/w/imagenet.h5",
                                 "artifact": str(out / "cells" / "x" / "m.tflite")})
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


def test_the_answer_comes_first_and_the_page_fits_1400_px(report, tmp_path):
    probed = tmp_path / "layout.html"
    probed.write_text(report.read_text().replace("</body>", LAYOUT + "</body>"))
    dom, log = _chromium(probed, tmp_path / "profile", "--window-size=1400,2400")
    assert _console(log) == []
    body = next(attrs for tag, attrs in _parsed(dom).elements if tag == "body")
    assert body["data-first"] == "section#recommendation"
    first = body["data-first-text"]
    assert first.startswith("Recommendation") and "efficientnetv2_s (scratch, fp32)" in first, first
    scroll, client, window = map(int, body["data-closed"].split())
    assert window == 1400 and scroll <= client, body["data-closed"]
    scroll, client = map(int, body["data-open"].split())
    assert scroll <= client, f"the page scrolls sideways with every section open: {body['data-open']}"


def test_a_model_has_one_colour_in_every_plot_key_and_no_machine_path_shows(report, tmp_path):
    dom, log = _chromium(report, tmp_path / "profile")
    assert _console(log) == []
    page = _parsed(dom)
    keys: dict[str, set[str]] = {}
    per_figure = 0
    for tag, attrs in page.elements:
        if tag == "li" and attrs.get("class") == "key-model":
            keys.setdefault(attrs["data-model"], set()).add(attrs["data-color"])
        per_figure += tag == "ul" and attrs.get("class") == "key" and "id" not in attrs
    assert per_figure == len([i for i in _images(dom) if i.get("class") == "plot"]) >= 6  # a key beside each plot
    assert sorted(keys) == ["efficientnetv2_s", "mobilenetv3_small_100", "resnet18", "squeezenet1_1"]
    assert all(len(colours) == 1 for colours in keys.values()), keys
    assert len({next(iter(c)) for c in keys.values()}) == len(keys)  # and no two models share one
    text = " ".join(page.text)
    for root in ("/root/", "/tmp/", "/home/", str(report.parent)):
        assert root not in text, root
    assert "cells/x/m.tflite" in text and "tflkit-data" in text  # relative inside the study, else the file's name
    assert "`" not in text
