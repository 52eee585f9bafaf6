"""The report as a reader sees it: the HTML in headless Chromium at 1280 px and the PDF as page images.

Needs Debian's `chromium` and `pdftotext`/`pdftoppm` (poppler-utils); installed here when missing and apt-get is
usable as root, else the checks skip with the reason. The run is synthetic (`report.fake_run`: nothing is trained)."""
import os, re, shutil, subprocess
from pathlib import Path
import pytest

def _have_or_install(binary: str, package: str) -> str | None:
    "None when `binary` is on PATH (after an apt-get install where possible), else why not."
    if shutil.which(binary): return None
    if os.geteuid() != 0 or not shutil.which("apt-get"): return f"{binary} missing ({package}) and apt-get unusable here"
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package], capture_output=True, text=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return None if shutil.which(binary) else f"apt-get install {package} failed: {r.stderr.strip()[-200:]}"

@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from modern_llm.report import fake_run, render_report
    run = fake_run(tmp_path_factory.mktemp("r") / "run")
    return render_report(run)

def test_every_image_has_alt_text(report):
    "Every figure says what it shows in report.md (`![alt](...)`), report.html (`alt=`) and the PDF's tags (`/Alt`)."
    from modern_llm.report import image_alts
    alts = image_alts(report["md"].read_text())
    assert len(alts) >= 3 and all((report["md"].parent / p).exists() for p in alts), alts
    assert {p: a for p, a in alts.items() if len(a.split()) < 5} == {}, "an image without a meaningful alt text"
    imgs = re.findall(r"<img\b[^>]*>", report["html"].read_text())
    assert len(imgs) == len(alts) and [i[:80] for i in imgs if not re.search(r"""\balt=("[^"]{20,}"|'[^']{20,}')""", i)] == []
    if report["pdf"] is None: pytest.skip(f"no PDF: {report['pdf_via']}")
    pdf = report["pdf"].read_bytes()
    if b"/StructTreeRoot" not in pdf: pytest.skip("the PDF carries no readable structure tree (compressed or untagged): alt text not checked")
    assert pdf.count(b"/Alt(") == len(alts), f"{pdf.count(b'/Alt(')} images with alt text in the PDF, {len(alts)} in report.md"

def test_html_headline_first_and_fits_1280(report, tmp_path):
    why = _have_or_install("chromium", "chromium")
    if why: pytest.skip(why)
    html = report["html"].read_text()
    assert "x86\\_64" not in html and "\\_" not in re.sub(r"<[^>]+>", "", html.split("<body")[-1])  # no escaping artefacts
    probe = tmp_path / "probe.html"   # the report plus a script that records the page's layout in the DOM
    probe.write_text(html.replace("</body>", "<script>document.body.setAttribute('data-w', document.documentElement.scrollWidth);"
        "const t = [...document.querySelectorAll('table')][0]; document.body.setAttribute('data-t', t ? t.getBoundingClientRect().top : -1);"
        "</script></body>"))
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--virtual-time-budget=3000",
                        "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'data-w="(\d+)"[^>]*data-t="([\d.-]+)"', r.stdout)
    assert m, r.stderr[-500:]
    width, table_top = int(m.group(1)), float(m.group(2))
    assert width <= 1280, f"the page scrolls sideways at 1280 px: {width} px wide"
    assert 0 <= table_top < 900, f"the first table (the headline) starts at {table_top} px, below the first screen"
    assert html.index("Base") < html.index("Appendix: run and environment")

def test_pdf_page_one_has_the_headline(report, tmp_path):
    if report["pdf"] is None: pytest.skip(f"no PDF: {report['pdf_via']}")
    why = _have_or_install("pdftoppm", "poppler-utils")
    if why: pytest.skip(why)
    page1 = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-layout", str(report["pdf"]), "-"], capture_output=True, text=True).stdout
    for text in ("What was trained", "GSM8K EM", "+Verifier", "Verdict", "Plumbing check only"):
        assert text in page1, f"{text!r} not on page one:\n{page1}"
    assert "Appendix" not in page1 and "x86\\_64" not in page1
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(report["pdf"]), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and pages[0].stat().st_size > 1000
    width = subprocess.run(["pdftotext", "-layout", str(report["pdf"]), "-"], capture_output=True, text=True).stdout
    assert max(len(l) for l in width.splitlines()) < 200, "a table runs off the page"
