"""Lessons: Markdown files in assets/lessons/ that each open one page in a preset state, with the lesson beside it.

A lesson is `assets/lessons/NAME.md` (NAME: lower-case letters, digits, `-` and `_`; the link is `?lesson=NAME`):

    ---
    title: Denoising autoencoders
    order: 3
    page: pages/noise_lab.py
    summary: one line for the Lessons page
    state: noise=gaussian&level=0.5
    hide: noise_seed, noise_kind
    ---
    The lesson's text (Markdown; a formula between $$ lines).

    ## Try this

    1. A task for the learner.
       Notice: what they should see.

`page` is a page of the app (ui/navigation.py PAGES) that lessons can open (LESSON_PAGES below); `state` is
that page's own URL parameters, written as in a link; `hide` names the controls the lesson does not need
(LESSON_PAGES says each page's). Everything after `## Try this` is a numbered list of tasks, each with a line
that starts `Notice:`. The folder is LATENT_LAB_LESSONS when set, else assets/lessons/. Nothing here imports
streamlit: ui/lessons.py shows a lesson beside its page, pages/lessons.py lists them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

LESSONS_DIR = Path(__file__).resolve().parents[2] / "assets" / "lessons"  # LATENT_LAB_LESSONS overrides it
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
FIELDS = ("title", "order", "page", "summary", "state", "hide")
REQUIRED = ("title", "order", "page", "summary")
TRY_HEADING = re.compile(r"^##\s+Try this\s*$", re.M | re.I)
TASK_START = re.compile(r"^\d+\.\s+", re.M)
NOTICE = re.compile(r"^\s*(?:\*\*)?Notice:(?:\*\*)?\s*", re.M)


@dataclass(frozen=True)
class LessonPage:
    """What a lesson may set on one page: the URL parameters the page reads, and the controls it may hide.

    A hide key is the Streamlit key of the element that holds the control (`st-key-KEY` in the browser), so a
    page hides it with one `if shown(KEY):` (ui/lessons.py) and a test can look for it.
    """

    params: tuple[str, ...]
    hide: dict[str, str] = field(default_factory=dict)  # key → what it hides, for people


LESSON_PAGES = {
    "pages/draw.py": LessonPage(("run", "input", "image", "example"), {
        "draw_runs": "the model picker (the page opens on the model that reconstructs best)",
        "draw_source": "the input chooser (draw, example, upload, test digit)"}),
    "pages/noise_lab.py": LessonPage(("dn", "ae", "pca", "image", "noise", "level", "seed"), {
        "noise_kind": "the noise kind",
        "noise_seed": "the noise seed"}),
    "pages/pca_vs_ae.py": LessonPage(("k", "lin", "ae")),
    "pages/train.py": LessonPage(("model", "run", "compare"), {
        "train_transfer": "downloading and uploading runs"}),
    "pages/explorer.py": LessonPage(("run", "z", "image", "a", "b", "arith", "seed", "y"), {
        "explorer_interpolation": "the interpolation panel",
        "explorer_arithmetic": "the latent arithmetic panel"}),
    "pages/anomaly.py": LessonPage(("run", "tau"), {
        "anomaly_train_more": "the form that trains another one-class model (shown anyway while none exists)"}),
    "pages/gan_playground.py": LessonPage(("dist", "loss", "lr_g", "lr_d", "points"), {
        "toy_more": "the More settings panel (D steps per G step, width, depth, seed, arrow length)"}),
    "pages/gan_studio.py": LessonPage(("run", "compare", "step", "class"), {
        "gan_slow_motion": "the Slow motion tab",
        "gan_learning_rates": "the Learning rates tab",
        "gan_memorisation": "the Memorisation tab"}),
}


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file and says what to fix."""


@dataclass(frozen=True)
class Task:
    task: str  # what to do (Markdown)
    notice: str  # what the learner should notice (Markdown)


@dataclass(frozen=True)
class Lesson:
    name: str  # the file's stem, the link's ?lesson=
    title: str
    order: int
    page: str  # e.g. "pages/noise_lab.py"
    summary: str
    state: dict[str, str]  # the page's URL parameters
    hide: tuple[str, ...]
    text: str  # Markdown before "## Try this"
    tasks: tuple[Task, ...]

    def query(self) -> dict[str, str]:
        """The link's parameters: the lesson, then the page's preset state."""
        return {"lesson": self.name, **self.state}

    def link(self, base: str = "") -> str:
        """`base?lesson=NAME`: the short link (the app opens the lesson's page in its preset state)."""
        return f"{base}?{urlencode({'lesson': self.name})}"


@dataclass(frozen=True)
class Broken:
    """A lesson file that does not parse: listed with why, so one bad file never hides the others."""

    name: str
    error: str


def _front_matter(text: str, where: str) -> tuple[dict[str, str], str]:
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise LessonError(f"{where}: the file must start with a line '---', then `key: value` lines "
                          f"({', '.join(FIELDS)}), then '---'.")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise LessonError(f"{where}: the front matter has no closing '---' line.") from None
    fields: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise LessonError(f"{where}, line {number}: expected `key: value`, got {line.strip()!r}.")
        if key not in FIELDS:
            raise LessonError(f"{where}, line {number}: unknown field {key!r}; the fields are {', '.join(FIELDS)}.")
        if key in fields:
            raise LessonError(f"{where}, line {number}: {key!r} is given twice.")
        fields[key] = value.strip()
    missing = [k for k in REQUIRED if not fields.get(k)]
    if missing:
        raise LessonError(f"{where}: the front matter lacks {', '.join(missing)}.")
    return fields, "\n".join(lines[end + 1:])


def _tasks(body: str, where: str) -> tuple[str, tuple[Task, ...]]:
    """The text before `## Try this`, and the numbered tasks after it (each split at its `Notice:` line)."""
    parts = TRY_HEADING.split(body, maxsplit=1)
    if len(parts) != 2:
        raise LessonError(f"{where}: no '## Try this' section (a numbered list of tasks, each with a 'Notice:' line).")
    text, rest = parts[0].strip(), parts[1]
    if not text:
        raise LessonError(f"{where}: the lesson has no text before '## Try this'.")
    items = [s.strip() for s in TASK_START.split(rest)[1:] if s.strip()]
    if not items:
        raise LessonError(f"{where}: '## Try this' holds no numbered tasks ('1. …').")
    tasks = []
    for number, item in enumerate(items, start=1):
        pieces = NOTICE.split(item, maxsplit=1)
        if len(pieces) != 2 or not pieces[0].strip() or not pieces[1].strip():
            raise LessonError(f"{where}: task {number} needs its text, then a line 'Notice: …' saying what the "
                              "learner should see.")
        tasks.append(Task(" ".join(pieces[0].split()), " ".join(pieces[1].split())))
    return text, tuple(tasks)


def parse_lesson(text: str, name: str, where: str | None = None) -> Lesson:
    """A lesson from its file's text; LessonError (naming `where`, the file) when it cannot be used."""
    where = where or f"{name}.md"
    fields, body = _front_matter(text, where)
    try:
        order = int(fields["order"])
    except ValueError:
        raise LessonError(f"{where}: order must be a whole number, got {fields['order']!r}.") from None
    page = fields["page"]
    if page not in LESSON_PAGES:
        raise LessonError(f"{where}: page {page!r} is not one lessons can open; use one of "
                          f"{', '.join(LESSON_PAGES)}.")
    known = LESSON_PAGES[page]
    try:
        pairs = parse_qsl(fields.get("state", ""), keep_blank_values=True, strict_parsing=bool(fields.get("state")))
    except ValueError:
        raise LessonError(f"{where}: state must read like a link's query, e.g. noise=gaussian&level=0.5; "
                          f"got {fields['state']!r}.") from None
    state: dict[str, str] = {}
    for key, value in pairs:
        if key not in known.params:
            raise LessonError(f"{where}: {page} does not read the parameter {key!r}; it reads "
                              f"{', '.join(known.params)}.")
        if not value or key in state:
            raise LessonError(f"{where}: the parameter {key!r} is empty or given twice.")
        state[key] = value
    hide = tuple(h.strip() for h in fields.get("hide", "").split(",") if h.strip())
    unknown = [h for h in hide if h not in known.hide]
    if unknown:
        raise LessonError(f"{where}: {page} has no control {', '.join(map(repr, unknown))} to hide; it can hide "
                          + (", ".join(known.hide) if known.hide else "none") + ".")
    text, tasks = _tasks(body, where)
    return Lesson(name, fields["title"], order, page, fields["summary"], state, hide, text, tasks)


def lessons_dir() -> Path:
    """The lessons' folder: LATENT_LAB_LESSONS when set (a presenter's own set), else assets/lessons/."""
    return Path(os.environ.get("LATENT_LAB_LESSONS") or LESSONS_DIR)


def lesson_files(folder: Path | None = None) -> dict[str, Path]:
    """name → file of every lesson in the folder (default lessons_dir()), files whose stem is a valid name."""
    folder = lessons_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.md")) if NAME.match(p.stem) and p.is_file()}


def read_lesson(path: Path) -> Lesson:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LessonError(f"{path.name}: cannot be read ({e}).") from None
    return parse_lesson(text, path.stem, path.name)


@dataclass(frozen=True)
class Catalogue:
    lessons: tuple[Lesson, ...]  # in order
    broken: tuple[Broken, ...]

    def get(self, name: str) -> Lesson | None:
        return next((lesson for lesson in self.lessons if lesson.name == name), None)

    def neighbours(self, name: str) -> tuple[Lesson | None, Lesson | None]:
        """The lessons before and after `name` in order (None at either end)."""
        names = [lesson.name for lesson in self.lessons]
        i = names.index(name)
        return (self.lessons[i - 1] if i > 0 else None,
                self.lessons[i + 1] if i + 1 < len(names) else None)


def catalogue(folder: Path | None = None) -> Catalogue:
    """Every lesson in order (order, then name); the files that do not parse, each with its error."""
    lessons, broken = [], []
    for name, path in lesson_files(folder).items():
        try:
            lessons.append(read_lesson(path))
        except LessonError as e:
            broken.append(Broken(name, str(e)))
    return Catalogue(tuple(sorted(lessons, key=lambda lesson: (lesson.order, lesson.name))), tuple(broken))


def load_lesson(name: str, folder: Path | None = None) -> Lesson:
    """The lesson `name` (a link's ?lesson=); LessonError when there is none or its file is broken.

    The name is looked up among the folder's files, never joined into a path, so a crafted link reads nothing else.
    """
    files = lesson_files(folder)
    if name not in files:
        shown = name if len(name) <= 60 else f"{name[:60]}…"
        raise LessonError(f"There is no lesson {shown!r}. The lessons are: {', '.join(files) or 'none'}.")
    return read_lesson(files[name])
