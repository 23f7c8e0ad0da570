"""The report at a glance: headline first, sections in reading order, figures without overprinted
text, no 'nan', and the HTML page working in a real headless browser (Chromium)."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from archbench import results
from archbench.report import build_report
from archbench.report import figures as plots
from archbench.report.build import headline_studies
from archbench.report.context import Analysis

from helpers import REPO
from test_report_tuning import NO_REFERENCE, write_studies

REFERENCE_RUNS = REPO / "results" / "reference" / "runs"


def _copy_subset(results_dir: Path) -> Path:
    """A small subset of the committed records: the headline study's seeds 0-1, and a dozen profiled
    ImageNet models (enough points that their names must be placed, or numbered)."""
    chosen = sorted((REFERENCE_RUNS / "cifar_cpu").glob("*/*/*/seed[01]/record.json"))
    chosen += sorted((REFERENCE_RUNS / "imagenet_complexity").glob("**/record.json"))[:12]
    for path in chosen:
        target = results_dir / "runs" / path.relative_to(REFERENCE_RUNS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return results_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of the subset, every figure checked for overlapping text as it is saved."""
    overlaps = {}
    original = plots.save

    def checking(figure, figures_dir, stem):
        plots.place_point_labels(figure)
        overlaps[stem] = plots.overlapping_texts(figure)
        return original(figure, figures_dir, stem)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "save", checking)
        out = build_report(_copy_subset(tmp_path_factory.mktemp("records")),
                           tmp_path_factory.mktemp("built") / "report", reference=NO_REFERENCE,
                           headline=["cifar_cpu"])
    return out, overlaps


def test_the_report_opens_with_the_headline_verdict_figure_and_short_table(built):
    out, _ = built
    readme = (out / "README.md").read_text(encoding="utf-8")
    glance, headline = readme.index("## At a glance"), readme.index("### Headline: cifar_cpu")
    assert glance < headline < readme.index("## How to read") < readme.index("## Study: cifar_cpu")
    top = readme[headline:readme.index("## How to read")]
    assert "has the highest mean test top-1" in top and "![Mean test top-1 per model" in top
    # the headline verdict is one point a line, not a paragraph
    points = [line for line in top.splitlines() if line.startswith("- ")]
    assert points[0].startswith("- ") and "has the highest mean test top-1" in points[0]
    assert any(point.startswith("- It says how these models rank") for point in points)
    assert "| Model | Test top-1 (%) | 95% interval | Seeds | MACs (M) | Params (M) | Batch-1 latency (ms, cpu: " in top
    assert "| Training precision |" in top
    # the committed speed figures were re-measured in quiet on another machine: named as that machine's
    assert "were measured again with task=measure on cpu: " in top
    assert "re-measured with task=measure; the runs were made on cpu: AMD EPYC" in readme
    # the training machine's MFU rests on a peak taken under load: greyed, and no conclusion drawn from it
    assert "‡ shown greyed, and no speed conclusion drawn from it: MFU of" in top


def test_no_figure_of_the_report_overprints_one_text_with_another(built):
    out, overlaps = built
    assert len(overlaps) >= 8 and len(overlaps) == len(list((out / "figures").glob("*.png")))
    assert {stem: pairs for stem, pairs in overlaps.items() if pairs} == {}


def test_no_table_or_text_prints_nan(built):
    out, _ = built
    for path in [out / "README.md", *(out / "tables").glob("*.md")]:
        assert not re.search(r"\bnan\b", path.read_text(encoding="utf-8"), re.IGNORECASE), path


def test_overlapping_texts_finds_labels_drawn_on_top_of_each_other():
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.text(0.5, 0.5, "resnet20")
    axes.text(0.5, 0.5, "resnet56")
    assert ("resnet20", "resnet56") in plots.overlapping_texts(figure)
    plt.close(figure)


def test_study_configs_name_the_headline_and_sections_follow_reading_order(tmp_path):
    assert "cifar_cpu" in headline_studies()
    runs = results.load(write_studies(tmp_path / "records"))
    analysis = Analysis(runs)
    # the tuned results come straight after their shared counterpart, the trials that chose them after
    assert analysis.study_order(["shared"]) == ["shared", "tuned", "tune"]
    assert analysis.study_order([]) == ["shared", "tuned", "tune"]
    assert analysis.study_order(["tuned"]) == ["tuned", "tune", "shared"]


# ------------------------------------------------------------------------------------- browser

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium here (Debian: apt-get install -y chromium; make test installs it when it can): "
                "the page is not tested in a browser")


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]

# Injected into a copy of the page: records console errors and uncaught exceptions from the start,
# then, once loaded, checks every image and sorts each table by a numeric column both ways.
PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push("error: " + e.message); });
var __consoleError = console.error;
console.error = function () { window.__errors.push("console.error: " + Array.from(arguments).join(" "));
                              __consoleError.apply(console, arguments); };
</script>"""
PROBE_END = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.alt; });
  var sorted = [];
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  document.querySelectorAll("table").forEach(function (table) {
    var headers = table.querySelectorAll("thead th");
    var rows = table.tBodies[0].rows;
    if (rows.length < 2) { return; }
    for (var c = 0; c < headers.length; c++) {
      var values = Array.from(rows).map(function (r) { return parseFloat(r.cells[c].textContent.replace(/[,\\u00b1+%]/g, "")); });
      if (values.some(isNaN) || new Set(values).size < 2) { continue; }
      headers[c].click();
      var up = Array.from(table.tBodies[0].rows).map(function (r) { return parseFloat(r.cells[c].textContent.replace(/[,\\u00b1+%]/g, "")); });
      headers[c].click();
      var down = Array.from(table.tBodies[0].rows).map(function (r) { return parseFloat(r.cells[c].textContent.replace(/[,\\u00b1+%]/g, "")); });
      var ascending = up.every(function (v, k) { return k === 0 || up[k - 1] <= v; });
      var descending = down.every(function (v, k) { return k === 0 || down[k - 1] >= v; });
      sorted.push({table: table.id, column: headers[c].textContent, ok: ascending && descending});
      break;
    }
  });
  var out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({images: images.length, broken: broken, sorted: sorted, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def _run_chromium(binary, args, tmp_path):
    profile = tmp_path / "chromium-profile"
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "HOME": str(tmp_path)})


@pytest.mark.slow
def test_the_html_page_works_in_headless_chromium(built, tmp_path):
    binary = _chromium()
    out, _ = built
    page = (out / "index.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>\n" + PROBE_HEAD, 1).replace("</body>", PROBE_END + "\n</body>", 1),
                     encoding="utf-8")
    dumped = _run_chromium(binary, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dumped.stdout, re.S)
    assert found, "the probe did not run: " + dumped.stdout[-1000:] + dumped.stderr[-1000:]
    report = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                        .replace("&gt;", ">"))
    assert report["errors"] == [] and report["broken"] == []
    assert report["images"] == len(list((out / "figures").glob("*.png")))
    assert report["sorted"] and all(entry["ok"] for entry in report["sorted"]), report["sorted"]

    screenshot = tmp_path / "report.png"
    shot = _run_chromium(binary, ["--window-size=1280,2400", f"--screenshot={screenshot}",
                                  (out / "index.html").as_uri()], tmp_path)
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
