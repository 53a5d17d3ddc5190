"""The real-text corpus's pure parts (bench/realtext.py), the overlap measure
and the acceptance list that ends BENCHMARKS.md (issue 15)."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import exactbm25, realtext, report
from bench.cost import CostRow

MAN_PAGE = r""".\" Copyright and licence: a comment, never text
.de XX
.  this macro definition is not text either
..
.TH OPEN 2 2023-02-05 "Linux man-pages 6.03"
.SH NAME
open, creat \- open and possibly create a file
.SH SYNOPSIS
.nf
.B #include <fcntl.h>
.BI "int open(const char *" pathname ", int " flags );
.fi
.SH DESCRIPTION
The
.BR open ()
system call opens the file specified by \fIpathname\fP\(emif it
exists \e and is readable.
.PP
See also
.BR close (2)
and \*(lqfcntl\*(rq.
.TS
tab(:);
l l.
O_RDONLY:read only
.TE
.IP \(bu 2
a bulleted item
"""


def test_man_text_keeps_the_words_and_drops_the_formatting() -> None:
    page = realtext.man_text(MAN_PAGE)
    assert page is not None
    title, text = page
    assert title == "OPEN(2)"
    assert "open, creat - open and possibly create a file" in text
    assert "int open(const char *pathname, int flags);" in text
    assert "The\nopen()\nsystem call opens the file specified by pathname-if it" in text
    assert "exists \\ and is readable." in text
    assert "close(2)" in text
    assert "O_RDONLY read only" in text
    assert "* a bulleted item" in text
    for leaked in (
        "Copyright",
        "macro definition",
        "tab(:)",
        "\\f",
        "\\(",
        ".PP",
        "l l.",
    ):
        assert leaked not in text, leaked


def test_man_page_links_and_files() -> None:
    assert realtext.man_text(".so man2/open.2\n") is None
    assert realtext.man_text('.\\" comment\n.so man3/printf.3\n') is None


def test_man_doc_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "man2" / "open.2.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(MAN_PAGE.encode()))
    doc = realtext.man_doc(path)
    assert doc is not None
    assert (doc.external_id, doc.title) == ("man:open.2.gz", "OPEN(2)")
    link = tmp_path / "man2" / "creat.2.gz"
    link.write_bytes(gzip.compress(b".so man2/open.2\n"))
    assert realtext.man_doc(link) is None


def test_html_page_through_the_apps_loader(tmp_path: Path) -> None:
    root = tmp_path / "html"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "page.html").write_text(
        "<html><head><title>8.3. Character Types</title><style>p {}</style></head>"
        "<body><h1>Character Types</h1><p>varchar(n) stores up to n characters.</p>"
        "<script>var x = 1;</script></body></html>"
    )
    (root / "genindex.html").write_text("<html><body><p>index</p></body></html>")
    (root / "_sources").mkdir()
    (root / "_sources" / "page.html").write_text("<p>source listing</p>")
    source = realtext.HtmlSource("manual", "some-doc", str(root))
    files = realtext.html_files(source)
    assert [relative for _, relative in files] == ["sub/page.html"]
    doc = realtext.html_doc("manual", *files[0])
    assert doc is not None
    assert doc.external_id == "manual:sub/page.html"
    assert doc.title == "8.3. Character Types"
    assert "varchar(n) stores up to n characters." in doc.text
    assert "var x" not in doc.text and "p {}" not in doc.text


def test_missing_manual_says_how_to_install(tmp_path: Path) -> None:
    source = realtext.HtmlSource("manual", "some-doc", str(tmp_path / "nowhere-*"))
    with pytest.raises(realtext.MissingDocs, match="make deps"):
        realtext.html_files(source)


def test_newest_version_directory(tmp_path: Path) -> None:
    for version in ("9", "15", "17"):
        (tmp_path / f"postgresql-doc-{version}" / "html").mkdir(parents=True)
    newest = realtext._newest(str(tmp_path / "postgresql-doc-*" / "html"))
    assert newest == (tmp_path / "postgresql-doc-17" / "html").resolve()


def _docs(*sizes: int) -> list[realtext.Chunked]:
    return [
        realtext.Chunked(
            realtext.TextDoc(f"d{i}", f"t{i}", ""), [f"c{i}.{n}" for n in range(size)]
        )
        for i, size in enumerate(sizes)
    ]


def test_take_cuts_at_exactly_the_size_and_keeps_the_order() -> None:
    docs = _docs(3, 4, 5)
    assert realtext.chunk_count(docs) == 12
    taken = realtext.take(docs, 5)
    assert realtext.chunk_count(taken) == 5
    assert [c.doc.external_id for c in taken] == ["d0", "d1"]
    assert taken[1].chunks == ["c1.0", "c1.1"]  # the last document keeps what fits
    assert realtext.chunk_count(realtext.take(docs, 100)) == 12  # the text ran out
    assert realtext.take(docs, 7)[:1] == realtext.take(docs, 3)  # a prefix


def test_shuffle_is_fixed() -> None:
    docs = _docs(*range(1, 30))
    first = [c.doc.external_id for c in realtext.shuffled(docs)]
    assert first == [c.doc.external_id for c in realtext.shuffled(docs)]
    assert first != [c.doc.external_id for c in docs]
    assert sorted(first) == sorted(c.doc.external_id for c in docs)


def test_chunking_uses_the_apps_chunker(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><title>T</title><body><p>" + "word " * 500 + "</p></body></html>"
    )
    read = realtext._read(("manual", str(page), "page.html", 200, 40))
    assert read is not None
    doc, chunks = read
    assert doc.title == "T"
    # 500 one-token words, 200 per chunk, 40 shared: 0-200, 160-360, 320-500
    assert len(chunks) == 3
    assert all(len(c.split()) <= 200 for c in chunks)


def test_queries_are_plain_and_distinct() -> None:
    assert len(realtext.QUERIES) == 50
    assert len(set(realtext.QUERIES)) == 50
    for query in realtext.QUERIES:
        assert '"' not in query and " -" not in query, query  # no operators


def test_overlap() -> None:
    exact = list(range(10))
    assert exactbm25.overlap(exact, exact) == 1.0
    assert exactbm25.overlap([0, 1, 2, 3, 4, 90, 91, 92, 93, 94], exact) == 0.5
    assert exactbm25.overlap(list(reversed(exact)), exact) == 1.0  # a set measure
    assert exactbm25.overlap([0, 1, 2], exact) == 0.3  # a short service list
    assert exactbm25.overlap([2, 1], [1, 2]) == 1.0  # a short exact list
    assert exactbm25.overlap([5], [1, 2]) == 0.0
    assert exactbm25.overlap([], []) is None
    assert exactbm25.overlap(list(range(20)), list(range(5, 25))) == 0.5  # top 10 only


def _report(**fields: Any) -> Any:
    base: dict[str, Any] = {"cost": None, "overlap": [], "relevance": None}
    return SimpleNamespace(**{**base, **fields})


def _cost(corpus: str, chunks: int, knn: float, hybrid: float) -> list[CostRow]:
    return [
        CostRow(chunks, "HNSW top-10 alone", 100, knn, 1, 2, None, corpus),
        CostRow(
            chunks, "hybrid SQL before issue 15", 100, hybrid * 3, 1, 2, None, corpus
        ),
        CostRow(chunks, "hybrid SQL (service)", 100, hybrid, 1, 2, None, corpus),
    ]


def _overlap(corpus: str, chunks: int, value: float) -> exactbm25.OverlapRow:
    return exactbm25.OverlapRow(corpus, chunks, 50, 0, value, 0.5, 40, 12.0, "bm25")


def test_acceptance_list_has_exactly_the_five_lines() -> None:
    run = SimpleNamespace(
        rows=_cost("synthetic", 10000, 2.0, 5.0)
        + _cost("synthetic", 100000, 2.5, 8.75)
        + _cost("real text", 10000, 2.0, 4.0)
        + _cost("real text", 100000, 2.0, 7.0)
    )
    methods = [
        SimpleNamespace(name="service lexical (bm25)", ndcg10=0.35),
        SimpleNamespace(name="service hybrid", ndcg10=0.4251),
    ]
    rep = _report(
        cost=run,
        overlap=[
            _overlap("synthetic", 10000, 0.995),
            _overlap("synthetic", 100000, 0.9612),
            _overlap("real text", 10000, 1.0),
            _overlap("real text", 100000, 0.95),
        ],
        relevance=SimpleNamespace(methods=methods),
    )
    assert report.acceptance_lines(rep) == [
        "- hybrid/KNN CPU ratio at 100000 chunks (synthetic): 3.50",
        "- hybrid/KNN CPU ratio at 100000 chunks (real text): 3.50",
        "- lexical overlap@10 with exact BM25 at 100000 chunks (synthetic): 0.961",
        "- lexical overlap@10 with exact BM25 at 100000 chunks (real text): 0.950",
        "- Cranfield hybrid nDCG@10: 0.425",
    ]


def test_acceptance_list_says_what_was_not_measured() -> None:
    lines = report.acceptance_lines(_report())
    assert len(lines) == 5
    assert (
        lines[0] == "- hybrid/KNN CPU ratio at 100000 chunks (synthetic): not measured"
    )
    assert lines[-1] == "- Cranfield hybrid nDCG@10: not measured"


def test_make_deps_installs_every_package_the_corpus_reads() -> None:
    script = (REPO / "scripts" / "host-deps.sh").read_text()
    block = script[script.index("for pkg in postgresql-doc") :]
    listed = block[: block.index("; do")].replace("\\\n", " ").split()[3:]
    assert sorted(listed) == sorted(realtext.PACKAGES)
