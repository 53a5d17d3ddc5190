"""A real-text corpus for the bench (issue 15), built at bench time from the
documentation Debian packages ship; none of its text is in the repository.

Sources (``HTML_SOURCES``, ``MAN_PACKAGES``; ``make deps`` installs ``PACKAGES``):
the HTML manuals of PostgreSQL, Python, SQLite, Django, SQLAlchemy, Flask, git,
Node.js, BIND, bash and the Debian reference, read by the app's HTML loader
(index pages and Sphinx's source listings left out), and the man pages of
manpages, manpages-dev, perl-doc and libssl-doc (the files ``dpkg -L`` lists),
their roff stripped to text here (``man_text``). ~6,000 pages, ~108k chunks.

Each page is chunked by the app's chunker with the service's
``CHUNK_TOKENS``/``CHUNK_OVERLAP`` and its title as every chunk's heading, as
``vector-search ingest`` stores it. The pages are shuffled with a fixed seed and
read in that order until enough chunks are read, so a smaller corpus is a prefix
of a larger one mixing every source (the 10k corpus is the first 10k chunks of
the 100k one), cut at exactly the size asked for (the last document keeps the
chunks that fit). What was read is cached on disk (``build``).

Rows get the synthetic corpus's columns and patterns (``bench.perf``): document d
in that order has department ``dept-(d % 10)``, clearance level ``1 + d % 3``,
chunks of priority 3. Vectors are the synthetic corpus's clustered unit vectors,
not embeddings of the text: the stand-in embeds ~8 chunks/s on this machine's 2
cores, ~3.5 hours for 100k chunks, which no ``make bench`` can afford (the
corpus is for the lexical side and the query cost; Cranfield measures relevance).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
import os
import random
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from vector_search import chunking, loaders
from vector_search.chunking import chunk_text
from vector_search.loaders import load_file

from bench.perf import (
    CHUNK_COPY,
    CHUNK_COPY_TYPES,
    DEPARTMENTS,
    REAL_TEXT,
    Corpus,
    centers,
    clustered_vectors,
    indexes_built_after,
)
from bench.services import Stack

SOURCE = "bench-realtext"
SEED = 15  # the documents' order
VECTOR_SEED = 10_000_000  # + document number: its vectors' generator
DOC_ROOT = Path("/usr/share/doc")
# pages that list names (indexes, search pages), not text
SKIPPED_HTML = re.compile(
    r"^(genindex.*|py-modindex|search|bookindex|index|contents)\.html$"
)


class MissingDocs(RuntimeError):
    """The documentation packages are not installed; the message says how to install them."""


def missing_message(what: str) -> str:
    return (
        f"the real-text corpus needs {what}: run `make deps` as root (it installs the Debian "
        f"packages {', '.join(PACKAGES)}), or `apt-get install {' '.join(PACKAGES)}`"
    )


# -- man pages: roff to text ---------------------------------------------------------
# requests and macros whose arguments are not text
_SILENT = frozenset(
    [
        "ad",
        "bp",
        "br",
        "ce",
        "cs",
        "de",
        "ds",
        "el",
        "fi",
        "ft",
        "hy",
        "ie",
        "if",
        "ig",
        "in",
        "ll",
        "na",
        "ne",
        "nf",
        "nh",
        "nr",
        "ns",
        "pc",
        "pl",
        "po",
        "ps",
        "rm",
        "rr",
        "so",
        "sp",
        "ss",
        "ta",
        "tc",
        "ti",
        "tm",
        "tr",
        "vs",
        "ev",
        "fl",
        "lf",
        "mk",
        "rt",
        "wh",
        "ch",
        "it",
        "PD",
        "RE",
        "RS",
        "TP",
        "LP",
        "PP",
        "P",
        "HP",
        "EX",
        "EE",
        "IX",
        "UE",
        "ME",
        "YS",
        "ad",
        "TE",
        "TS",
        "EQ",
        "EN",
        "Dd",
        "Os",
        "Bl",
        "El",
        "Ed",
        "Ef",
        "Ek",
        "Bd",
        "Bk",
        "Pp",
        "Lp",
        "Vb",
        "Ve",
    ]
)
# alternating-font macros: arguments joined without spaces (.BR open (2) -> open(2))
_ALTERNATING = frozenset(["BI", "BR", "IB", "IR", "RB", "RI"])
_SPECIAL = {
    "em": "-",
    "en": "-",
    "hy": "-",
    "mi": "-",
    "bu": "*",
    "aq": "'",
    "dq": '"',
    "lq": '"',
    "rq": '"',
    "oq": "'",
    "cq": "'",
    "co": "(c)",
    "rg": "(R)",
    "tm": "(TM)",
    "mu": "x",
    "ge": ">=",
    "le": "<=",
    "ne": "!=",
    "->": "->",
    "<-": "<-",
    "ti": "~",
    "ha": "^",
    "rs": "\\",
    "sl": "/",
    "ba": "|",
    "or": "|",
    "pl": "+",
    "eq": "=",
    "sq": "#",
}
_ESCAPE = re.compile(
    r"\\(?:"
    r"f(?:\[[^\]]*\]|\(..|.)"  # font
    r"|s(?:\[[^\]]*\]|\(..|[-+]?\d\d?|[-+]\(..)"  # size
    r"|\*(?:\[[^\]]*\]|\(..|.)"  # string
    r"|n[-+]?(?:\[[^\]]*\]|\(..|.)"  # number register
    r"|[hvlLwbDoxXNZ]'[^']*'"  # motions, widths, drawing
    r"|\((..)"  # special character \(xx  (group 1)
    r"|\[([^\]]*)\]"  # special character \[name]  (group 2)
    r"|(.)"  # anything else  (group 3)
    r")"
)
_SINGLE = {
    "-": "-",
    "e": "\\",
    "\\": "\\",
    ".": ".",
    "'": "'",
    "`": "`",
    " ": " ",
    "~": " ",
    "0": " ",
    "t": " ",
    '"': "",
}


def _unescape(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name is not None:
            return _SPECIAL.get(name, "")
        single = m.group(3)
        if single is not None:
            return _SINGLE.get(single, "" if not single.isalnum() else single)
        return ""

    return _ESCAPE.sub(repl, text)


def _args(line: str) -> list[str]:
    """A request's arguments: space-separated, "double quoted" ones kept whole."""
    return [
        a[1:-1].replace('""', '"') if a.startswith('"') else a
        for a in re.findall(r'"(?:[^"]|"")*"?|\S+', line)
    ]


def _strip_comment(line: str) -> str:
    at = line.find('\\"')
    while at > 0 and line[at - 1] == "\\":  # an escaped backslash before the quote
        at = line.find('\\"', at + 2)
    return line if at < 0 else line[:at]


def man_text(roff: str) -> tuple[str, str] | None:
    """A man page's (title, text): ``name(section)`` from ``.TH`` and the page's
    text without its formatting. None for a ``.so`` link to another page."""
    title = ""
    out: list[str] = []
    skip_until = ""
    table_format = False
    tab = "\t"  # tbl's column separator, tab(x) in the table's options
    for raw in re.sub(r"(?<!\\)\\\n", "", roff).splitlines():
        if skip_until:
            if raw.strip().startswith(skip_until):
                skip_until = ""
            continue
        line = _strip_comment(raw).rstrip()
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                continue
            name, rest = parts[0], parts[1] if len(parts) > 1 else ""
            if name == "so" and not out and not title:
                return None
            if name in ("de", "am", "ig", "de1"):
                skip_until = ".."
            elif name == "TH":
                args = _args(rest)
                title = f"{_unescape(args[0])}({args[1]})" if len(args) > 1 else ""
            elif name == "TS":
                table_format, tab = True, "\t"
            elif name in ("SH", "SS", "Sh", "Ss"):
                out.append("\n\n" + _unescape(" ".join(_args(rest))) + "\n")
            elif name in ("PP", "LP", "P", "Pp", "Lp", "sp", "TP", "HP"):
                out.append("\n\n")
            elif name == "IP":
                args = _args(rest)
                out.append("\n\n" + (_unescape(args[0]) + " " if args else ""))
            elif name in _ALTERNATING:
                out.append(_unescape("".join(_args(rest))) + "\n")
            elif name not in _SILENT and rest:
                out.append(_unescape(" ".join(_args(rest))) + "\n")
            continue
        if table_format:  # tbl: options and format lines up to the one ending in '.'
            found = re.search(r"tab\s*\((.)\)", line)
            if found:
                tab = found.group(1)
            if line.endswith("."):
                table_format = False
            continue
        if line.strip() in ("_", "=", "T{", "T}"):
            continue
        text = line.replace("T{", " ").replace("T}", " ").replace("\t", " ")
        if tab != "\t":
            text = text.replace(tab, " ")
        out.append(_unescape(text) + "\n")
    body = re.sub(r"[ \t]+", " ", "".join(out))
    body = re.sub(r"\n\s*\n+", "\n\n", body).strip()
    return title, body


# -- the documents ---------------------------------------------------------------------
@dataclass(frozen=True)
class TextDoc:
    """One document of the corpus, before chunking."""

    external_id: str  # source:relative path
    title: str
    text: str


@dataclass(frozen=True)
class HtmlSource:
    """A manual's HTML pages: every ``*.html`` under the newest directory matching
    ``root`` (a glob), less index pages and Sphinx's source listings."""

    name: str
    package: str  # what ``make deps`` installs
    root: str
    skip: str = r"(^|/)(_modules|_sources|_static)/"
    only: str = ""  # when set, the relative paths must match it


# the order before shuffling; packages named without versions so that Debian 12, 13
# and Ubuntu 24.04 install their own
HTML_SOURCES = (
    HtmlSource("postgresql", "postgresql-doc", "/usr/share/doc/postgresql-doc-*/html"),
    HtmlSource("python", "python3-doc", "/usr/share/doc/python3-doc/html"),
    HtmlSource("sqlite", "sqlite3-doc", "/usr/share/doc/sqlite3"),
    HtmlSource("django", "python-django-doc", "/usr/share/doc/python-django-doc/html"),
    HtmlSource(
        "sqlalchemy",
        "python-sqlalchemy-doc",
        "/usr/share/doc/python-sqlalchemy-doc/html",
    ),
    HtmlSource("flask", "python-flask-doc", "/usr/share/doc/python-flask-doc/html"),
    HtmlSource("git", "git-doc", "/usr/share/doc/git-doc"),
    HtmlSource("nodejs", "nodejs-doc", "/usr/share/doc/nodejs/api", r"^all\.html$"),
    HtmlSource("bind", "bind9-doc", "/usr/share/doc/bind9-doc/arm"),
    HtmlSource("bash", "bash-doc", "/usr/share/doc/bash-doc", only=r"^bashref\.html$"),
    HtmlSource(
        "debian-reference",
        "debian-reference-en",
        "/usr/share/debian-reference",
        only=r"\.en\.html$",
    ),
)
# man pages: the files these packages own (dpkg -L), links skipped
MAN_PACKAGES = ("manpages", "manpages-dev", "perl-doc", "libssl-doc")
PACKAGES = tuple(s.package for s in HTML_SOURCES) + MAN_PACKAGES


def _newest(pattern: str) -> Path | None:
    """The directory matching ``pattern`` with the highest version number in its
    path (postgresql-doc-15 < postgresql-doc-17), symlinks resolved."""

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", str(p)))

    found = sorted(
        (p for p in Path("/").glob(pattern.lstrip("/")) if p.is_dir()), key=version
    )
    return found[-1].resolve() if found else None


def html_files(source: HtmlSource) -> list[tuple[Path, str]]:
    """The source's pages (path, path relative to its root), sorted."""
    root = _newest(source.root)
    if root is None:
        raise MissingDocs(
            missing_message(f"{source.root} (the package {source.package})")
        )
    out = []
    for path in sorted(root.rglob("*.html")):
        relative = path.relative_to(root).as_posix()
        if SKIPPED_HTML.match(path.name) or re.search(source.skip, relative):
            continue
        if source.only and not re.search(source.only, relative):
            continue
        out.append((path, relative))
    return out


def html_doc(source: str, path: Path, relative: str) -> TextDoc | None:
    """One HTML page read by the app's loader (None when it holds no text)."""
    for doc in load_file(path, relative):
        if doc.text:
            return TextDoc(f"{source}:{relative}", doc.title, doc.text)
    return None


def package_files(packages: Iterable[str]) -> list[Path]:
    """Files the installed Debian packages own (``dpkg -L``)."""
    found: set[Path] = set()
    for package in packages:
        result = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise MissingDocs(missing_message(f"the package {package}"))
        found.update(Path(p) for p in result.stdout.splitlines() if p)
    return sorted(found)


def man_files(packages: Iterable[str]) -> list[Path]:
    return [
        p
        for p in package_files(packages)
        if "/man/man" in str(p) and not p.is_symlink() and p.is_file()
    ]


def man_doc(path: Path) -> TextDoc | None:
    """A man page (gzip or plain roff) as text; None for a ``.so`` link or no text."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    page = man_text(data.decode("utf-8", errors="replace"))
    if page is None or not page[1]:
        return None
    title, text = page
    return TextDoc(f"man:{path.name}", title or path.name, text)


def _read(task: tuple[str, str, str, int, int]) -> tuple[TextDoc, list[str]] | None:
    kind, path, relative, chunk_tokens, chunk_overlap = task
    doc = man_doc(Path(path)) if kind == "man" else html_doc(kind, Path(path), relative)
    if doc is None:
        return None
    chunks = chunk_text(doc.text, chunk_tokens, chunk_overlap)
    return (doc, chunks) if chunks else None


@dataclass(frozen=True)
class Chunked:
    doc: TextDoc
    chunks: list[str]


def tasks(
    chunk_tokens: int, chunk_overlap: int
) -> list[tuple[str, str, str, int, int]]:
    """Every page to read, in the corpus's order: sources in order, files sorted,
    then shuffled with the fixed seed (so any prefix mixes every source)."""
    found = [
        (source.name, str(path), relative, chunk_tokens, chunk_overlap)
        for source in HTML_SOURCES
        for path, relative in html_files(source)
    ]
    found += [
        ("man", str(p), "", chunk_tokens, chunk_overlap)
        for p in man_files(MAN_PACKAGES)
    ]
    return shuffled(found)


def read(
    todo: list[tuple[str, str, str, int, int]],
    need: int | None = None,
    processes: int | None = None,
) -> list[Chunked]:
    """The pages of ``todo`` read and chunked in that order, by ``processes``
    worker processes (default one per CPU); stops once ``need`` chunks are read."""
    out: list[Chunked] = []
    total = 0

    def keep(result: tuple[TextDoc, list[str]] | None) -> bool:
        nonlocal total
        if result is not None:
            out.append(Chunked(*result))
            total += len(result[1])
        return need is not None and total >= need

    workers = processes or os.cpu_count() or 1
    if workers == 1:
        for task in todo:
            if keep(_read(task)):
                break
        return out
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for result in pool.imap(_read, todo, chunksize=8):
            if keep(result):
                break
    return out


def shuffled(items: list[Any]) -> list[Any]:
    """``items`` in the corpus's order: shuffled with the fixed seed."""
    order = list(items)
    random.Random(SEED).shuffle(order)
    return order


def take(docs: list[Chunked], size: int) -> list[Chunked]:
    """The first ``size`` chunks of ``docs``; the last document keeps the chunks
    that fit. Fewer when the text runs out."""
    out: list[Chunked] = []
    total = 0
    for c in docs:
        if total >= size:
            break
        out.append(Chunked(c.doc, c.chunks[: size - total]))
        total += len(out[-1].chunks)
    return out


def chunk_count(corpus: list[Chunked]) -> int:
    return sum(len(c.chunks) for c in corpus)


def package_versions(packages: Iterable[str]) -> list[str]:
    result = subprocess.run(
        [
            "dpkg-query",
            "-W",
            "-f",
            "${Package} ${Version} ${db:Status-Status}\n",
            *packages,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = sorted(result.stdout.splitlines())
    if result.returncode != 0 or any(not line.endswith(" installed") for line in lines):
        missing = sorted(
            set(packages)
            - {line.split()[0] for line in lines if line.endswith(" installed")}
        )
        raise MissingDocs(missing_message(f"the packages {', '.join(missing)}"))
    return lines


@dataclass
class Built:
    docs: list[Chunked]  # the documents read, in the corpus's order
    seconds: float  # reading and chunking, or reading the cache
    cached: bool
    complete: bool  # every page read (else the first ones, enough for the sizes asked)


def build(
    chunk_tokens: int, chunk_overlap: int, cache: Path | None, need: int | None = None
) -> Built:
    """The corpus in its order, at least ``need`` chunks of it (everything when
    None or when there is less), from ``cache`` (a directory) when it holds them:
    the key covers the packages' versions, the chunk settings and the code that
    extracts and chunks (this module, the app's loader and chunker)."""
    started = time.perf_counter()
    key = hashlib.sha256()
    for line in package_versions(PACKAGES):
        key.update(line.encode() + b"\n")
    key.update(f"{chunk_tokens}/{chunk_overlap}\n".encode())
    for module in (__file__, loaders.__file__, chunking.__file__):
        key.update(Path(module).read_bytes())
    path = cache / f"realtext-{key.hexdigest()[:16]}.jsonl.gz" if cache else None
    if path is not None and path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            complete = bool(json.loads(next(lines))["complete"])
            docs = [
                Chunked(TextDoc(r[0], r[1], ""), r[2]) for r in map(json.loads, lines)
            ]
        if complete or (need is not None and chunk_count(docs) >= need):
            return Built(docs, time.perf_counter() - started, True, complete)
    todo = tasks(chunk_tokens, chunk_overlap)
    docs = read(todo, need)
    complete = need is None or chunk_count(docs) < need
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("realtext-*.jsonl.gz"):
            old.unlink()
        partial = path.with_suffix(".partial")
        with gzip.open(partial, "wt", encoding="utf-8", compresslevel=1) as out:
            out.write(json.dumps({"complete": complete}) + "\n")
            for c in docs:
                out.write(json.dumps([c.doc.external_id, c.doc.title, c.chunks]) + "\n")
        partial.rename(path)
    return Built(docs, time.perf_counter() - started, False, complete)


# -- loading ---------------------------------------------------------------------------
def load_chunks(
    conn: psycopg.Connection[Any],
    corpus: list[Chunked],
    dim: int,
    vectors: Callable[[int, int], np.ndarray],
    departments: list[str],
) -> float:
    """COPY the corpus into ``documents``/``document_chunks`` with the synthetic
    corpus's columns and patterns; ``vectors(d, n)`` gives document d's n
    vectors. Returns seconds."""
    started = time.perf_counter()
    with conn.transaction():
        with conn.cursor().copy(
            "COPY documents (source, external_id, title, department, clearance_level, "
            "content_hash, metadata, chunk_count) FROM STDIN"
        ) as copy:
            for d, c in enumerate(corpus):
                copy.write_row(
                    (
                        SOURCE,
                        c.doc.external_id,
                        c.doc.title,
                        departments[d % len(departments)],
                        1 + d % 3,
                        "x",
                        '{"bench_corpus": "realtext"}',
                        len(c.chunks),
                    )
                )
        ids = dict(
            conn.execute(
                "SELECT external_id, id FROM documents WHERE source = %s", (SOURCE,)
            ).fetchall()
        )
        with conn.cursor().copy(CHUNK_COPY) as copy:
            copy.set_types(CHUNK_COPY_TYPES)
            for d, c in enumerate(corpus):
                vecs = vectors(d, len(c.chunks))
                for n, text in enumerate(c.chunks):
                    copy.write_row(
                        (
                            ids[c.doc.external_id],
                            n,
                            c.doc.title,
                            text.replace("\x00", " "),
                            "x",
                            vecs[n],
                            departments[d % len(departments)],
                            3,
                            1 + d % 3,
                        )
                    )
    conn.execute("ANALYZE documents")
    conn.execute("ANALYZE document_chunks")
    return time.perf_counter() - started


def corpus(stack: Stack, built: Built, size: int, overrides: dict[str, str]) -> Corpus:
    """A database holding the first ``size`` chunks of the real-text corpus,
    indexes built after the rows as for the synthetic corpus."""
    settings = stack.new_database(f"bench_real_{size}", **overrides)
    docs = take(built.docs, size)
    dim = settings.embedding_dimension
    middle = centers(dim)

    def vectors(d: int, n: int) -> np.ndarray:
        return clustered_vectors(n, dim, np.random.default_rng(VECTOR_SEED + d), middle)

    with stack.owner(settings.database_name) as conn:
        with indexes_built_after(conn, "document_chunks", ("hnsw", "gin")) as index_s:
            load = load_chunks(conn, docs, dim, vectors, DEPARTMENTS)
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) documents, document_chunks")
        load += time.perf_counter() - started
    return Corpus(settings, chunk_count(docs), load, index_s, REAL_TEXT)


# -- queries ---------------------------------------------------------------------------
# 50 short questions a student or an engineer might ask of these manuals, written
# for this corpus (the Cranfield questions are about aerodynamics)
QUERIES: tuple[str, ...] = (
    "how do I create an index without locking the table",
    "what does vacuum full do to disk space",
    "how to read a file line by line in python",
    "return value of fork in the child process",
    "set the default time zone of the database server",
    "difference between a list and a tuple",
    "how to open a file for appending without truncating it",
    "what happens when a transaction deadlock is detected",
    "configure password authentication for remote connections",
    "parse command line arguments with optional flags",
    "signal handler for interrupt from the keyboard",
    "how does the query planner estimate row counts",
    "convert a string to an integer and handle errors",
    "how to list the files in a directory",
    "memory allocation failure returns null pointer",
    "streaming replication standby server setup",
    "regular expression to match an email address",
    "copy data from a csv file into a table",
    "thread safety of the global interpreter lock",
    "socket timeout when connecting to a remote host",
    "what is the maximum length of a file name",
    "write ahead log archiving and point in time recovery",
    "sort a dictionary by its values",
    "environment variables inherited by a child process",
    "grant read only access to a user on all tables",
    "unicode encoding errors when reading bytes",
    "how to make a json column searchable with an index",
    "current date and time in a given format",
    "change the permissions of a file",
    "foreign key constraint with cascading delete",
    "run an external command and capture its output",
    "shared memory between processes",
    "window functions over a partition ordered by date",
    "catch an exception and print the traceback",
    "terminal settings for raw input without echo",
    "full text search ranking of documents",
    "decimal arithmetic without floating point rounding",
    "wait for a child process to terminate",
    "backup and restore a single database",
    "asynchronous coroutines and the event loop",
    "network interface configuration and routing table",
    "how are null values sorted in order by",
    "generate random numbers with a seed",
    "locale settings that affect character classification",
    "create a user defined function in sql",
    "mount a file system at boot",
    "unit tests with setup and teardown methods",
    "lock a row for update inside a transaction",
    "format of the password file",
    "measure how long a piece of code takes to run",
)
