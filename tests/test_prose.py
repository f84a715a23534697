"""The prose never disagrees with the code: measured numbers are glued, chapters have exercises.

A number typed into the prose with a unit of time, speed, ratio or quality ("12 ms", "3x faster",
"+4.1 dB", "87 %") is true on one machine, for one run. Such numbers must come from the cell that
measured them, through MyST-NB's ``glue``. This test strips everything that is not prose (code
cells, glue roles, math, inline code, directive options, links) and fails on what is left that
looks measured, unless it is in the explained allowlist below.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHAPTER_PARTS = ("jax", "diffusion", "protein", "generative")
PAGES = sorted(
    p for p in DOCS.rglob("*.md") if "_build" not in p.parts and not p.name.startswith("_")
)
CHAPTERS = sorted(p for part in CHAPTER_PARTS for p in (DOCS / part).glob("*.md"))

UNIT = (
    r"(?:ms|µs|us|ns|s|sec|seconds?|min|minutes?|h|hours?|%|×|x|dB|img/s|images/s|"
    r"tokens/s|it/s|steps/s|samples/s|times(?: (?:faster|slower|more|fewer|smaller|larger))?)"
)
NUMBER = r"(?<![\w.\-/])[+\-−]?\d[\d,]*(?:\.\d+)?(?:\s*[–-]\s*\d[\d,]*(?:\.\d+)?)?"
# "4 × 2" is a shape, not a ratio: a unit must not be followed by another number.
MEASURED = re.compile(rf"{NUMBER}\s?{UNIT}(?![\w/])(?!\s*\d)")

# (page, matched text, why it is not a measurement). Keep this short: prefer glue.
_MLM = "BERT/ESM2 masking recipe (15 % selected; 80/10/10), a published constant"
ALLOWLIST = {
    ("schedule.md", "*"): "the session plan: durations decided in advance, not measured",
    ("data.md", "5 %"): "clustering threshold (a parameter)",
    ("data.md", "60 %"): "identity that threshold corresponds to (derived, not measured)",
    ("data.md", "30 %"): "MMseqs2's usual identity threshold (a parameter)",
    ("jax/accelerated-numpy.md", "0.95 s"): "simulated time of a snapshot (set by the code)",
    ("jax/accelerated-numpy.md", "1.2 s"): "simulated two-way travel time (from the model)",
    ("jax/accelerated-numpy.md", "1.7 s"): "simulated two-way travel time (from the model)",
    ("jax/accelerated-numpy.md", "5×"): "the cited workshop's published speed-up",
    ("jax/accelerated-numpy.md", "120×"): "the cited workshop's published speed-up",
    ("jax/random-and-pytrees.md", "10 s"): "simulated duration (set by the code)",
    ("jax/debugging-and-devices.md", "8 times"): "the number of devices the page creates",
    ("wrap-up.md", "64 times"): "the ratio of the largest to the smallest batch (set by the code)",
    ("wrap-up.md", "10 %"): "the exercise's chosen threshold for the all-reduce's share",
    ("protein/attention.md", "80%"): _MLM,
    ("protein/attention.md", "10%"): _MLM,
    ("protein/attention.md", "15%"): _MLM,
    ("protein/attention.md", "25%"): "the page's own masking rate (a parameter)",
    ("protein/thermostability.md", "95 %"): "the confidence level of the intervals (a parameter)",
    (
        "protein/tiny-esm2.md",
        "60 %",
    ): "identity levels that define the homology split and the relatedness groups (thresholds)",
    (
        "protein/tiny-esm2.md",
        "40–60 %",
    ): "identity levels that define the homology split and the relatedness groups (thresholds)",
    (
        "protein/tiny-esm2.md",
        "1 %",
    ): "identity levels that define the homology split and the relatedness groups (thresholds)",
    (
        "protein/tiny-esm2.md",
        "45 %",
    ): "identity levels that define the homology split and the relatedness groups (thresholds)",
    ("protein/tiny-esm2.md", "15 %"): _MLM,
    ("protein/tiny-esm2.md", "80 %"): _MLM,
    ("protein/tiny-esm2.md", "10 %"): _MLM,
    ("protein/esm2.md", "15 %"): _MLM,
    ("protein/esm2.md", "80 %"): _MLM,
    ("protein/esm2.md", "12 %"): "ESM2's training mask rate 15 % × 80 % (a constant)",
    ("protein/design.md", "15%"): "the trust region's radius (a parameter)",
    ("generative/compare.md", "1 %"): "the copy check's threshold (a parameter)",
    ("generative/gans.md", "1 %"): "the mode-coverage threshold (a parameter)",
    ("generative/gans.md", "99.97 %"): "sigmoid of the logit the text chooses (arithmetic)",
    ("generative/latent-morphology.md", "95 %"): "the confidence level of the intervals",
    ("generative/conditional-diffusion.md", "95 %"): "the confidence level of the intervals",
    ("generative/conditional-diffusion.md", "50 %"): "chance level of a balanced judge",
    ("generative/conditional-diffusion.md", "75 %"): "the page's stated aim (a target)",
}


def prose(text: str) -> str:
    """The page's prose: text outside code cells, math, inline code, glue roles and options."""
    text = re.sub(r"^(`{3,}|~{3,})\{code-cell\}.*?^\1\s*$", "", text, flags=re.M | re.S)
    text = re.sub(
        r"^(`{3,})(?:python|bash|text|console|shell)?\s*\n.*?^\1\s*$", "", text, flags=re.M | re.S
    )
    text = re.sub(r"^---\n.*?^---\n", "", text, count=1, flags=re.M | re.S)  # front matter
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"\$[^$]+?\$", "", text)  # inline math may wrap a line
    text = re.sub(r"\{glue(?::\w+)?\}`[^`]*`", "", text)
    text = re.sub(
        r"\{(?:cite|cite:p|cite:t|ref|numref|doc|eq|math|download)[^}]*\}`[^`]*`", "", text
    )
    text = re.sub(r"``[^`]+``|`[^`\n]+`", "", text)
    text = re.sub(r"^:[\w-]+:.*$", "", text, flags=re.M)
    text = re.sub(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+", "", text)
    return text


def measured_numbers(page: Path) -> list[str]:
    rel = str(page.relative_to(DOCS))
    found = []
    for match in MEASURED.finditer(prose(page.read_text())):
        hit = match.group(0).strip()
        if (rel, "*") in ALLOWLIST or (rel, hit) in ALLOWLIST:
            continue
        found.append(hit)
    return found


def test_scanner_catches_typed_measurements_and_spares_glue_and_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "It takes 12 ms per step, a 3.5x speed-up, +4.1 dB and 87 % accuracy.\n"
        "The glued {glue:text}`step_ms:.1f` ms and $10^{3}$ s and `5 s` are fine.\n"
        "```{code-cell} ipython3\nprint('40 ms')\n```\n"
        "Figure 3 shows 1,000 chains in 2 dimensions; see {cite:p}`ho2020`.\n"
    )
    found = [m.group(0).strip() for m in MEASURED.finditer(prose(page.read_text()))]
    assert found == ["12 ms", "3.5x", "+4.1 dB", "87 %"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_no_hard_coded_measurement_in_prose(page):
    found = measured_numbers(page)
    assert not found, (
        f"{page.relative_to(DOCS)} types measured-looking numbers into its prose: {found}. "
        "Glue them from the cell that measured them (myst_nb.glue + {glue:text}), or, if they "
        "are not measurements, add them to ALLOWLIST in tests/test_prose.py with the reason."
    )


def _exercises(text: str) -> tuple[list[str], set[str]]:
    labels = re.findall(r"^`{3,}\{exercise\}[^\n]*\n:label: ([\w-]+)", text, re.M)
    solved = set(re.findall(r"^`{3,}\{solution-start\} ([\w-]+)", text, re.M))
    return labels, solved


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_chapter_ends_with_three_exercises_with_executed_solutions(page):
    text = page.read_text()
    labels, solved = _exercises(text)
    assert len(labels) >= 3, f"{page.relative_to(DOCS)} has {len(labels)} exercises; need >= 3"
    unsolved = [label for label in labels if label not in solved]
    assert not unsolved, f"{page.relative_to(DOCS)}: exercises without a solution: {unsolved}"
    for label in labels:
        block = text.split(f"{{solution-start}} {label}", 1)[1].split("{solution-end}", 1)[0]
        assert "{code-cell}" in block or len(block.strip()) > 200, (
            f"{page.relative_to(DOCS)}: the solution of {label} neither runs code nor explains"
        )


def test_schedule_start_times_add_up_and_match_the_stated_total():
    text = (DOCS / "schedule.md").read_text()
    rows = re.findall(r"^\| (\d+):(\d\d) \|([^|]*)\| (?:(\d+) min)? *\|", text, re.M)
    assert len(rows) >= 5, "schedule table not found"
    starts = [60 * int(h) + int(m) for h, m, _, _ in rows]
    durations = [int(d) for *_, d in rows[:-1]]
    for i, duration in enumerate(durations):
        assert starts[i] + duration == starts[i + 1], f"row {i + 1}: start + duration != next start"
    breaks = sum(int(d) for _, _, block, d in rows if "Break" in block)
    total = re.search(r"(\d+) h (\d+) min in all", text)
    teaching = re.search(r"(\d+) h (\d+) min of teaching", text)
    assert total and 60 * int(total[1]) + int(total[2]) == starts[-1] - starts[0]
    assert teaching and 60 * int(teaching[1]) + int(teaching[2]) == starts[-1] - breaks
