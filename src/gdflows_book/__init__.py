"""The paper pipeline of the gdflows book: not part of the ``gdflows`` library.

It executes the figure notebooks with papermill (:mod:`~gdflows_book.runner`), records what
produced each result (:mod:`~gdflows_book.provenance`), skips work whose inputs did not change
(:mod:`~gdflows_book.cache`), checks the figures' claims (:mod:`~gdflows_book.checks`), styles
and writes figures (:mod:`~gdflows_book.figures`), times the benchmarks
(:mod:`~gdflows_book.timing`) and builds the book (:mod:`~gdflows_book.book`). The command line
is ``python -m gdflows_book reproduce|book|list|status``. Every build directory and the
repository root are arguments: nothing is read from environment variables or found through
``__file__``.
"""
