"""Limits on every file symode reads (specs, params, fit and checkpoint files, data CSVs).

These files are untrusted input: they are exchanged between users, downloaded with papers and run on
shared servers. Each limit is far above what a real file needs and low enough that a hostile file is
refused in a fraction of a second, before it can exhaust time, memory or the Python stack. The values
and their reasons are documented in ``docs/spec-format.md`` (section "Input limits").
"""

from __future__ import annotations

MiB = 1024 * 1024

#: YAML/JSON documents (specs, params, fit.json, checkpoints). The shipped specs are under 10 kB and a
#: fit.json of a hybrid model with a thousand weights is under 1 MiB.
MAX_DOCUMENT_BYTES = 8 * MiB

#: Nodes (scalars, lists, mappings) of one YAML document after alias expansion; bounds the parser's
#: memory (about 0.5 kB a node) and time (a few seconds at most). A spec of a thousand parameters has
#: about 5,000. JSON, read by the much faster JSON parser, is bounded by its size only.
MAX_YAML_NODES = 100_000

#: Nodes that YAML aliases (``*name``, including ``<<: *name`` merges) may add by expansion. Aliases
#: that repeat a small block are fine; a "billion laughs" file (aliases of aliases, growing tenfold per
#: level) is refused at its third or fourth level.
MAX_ALIAS_NODES = 10_000

#: Nesting depth of lists and mappings. symode's own files nest at most 6 levels; deep nesting is only
#: useful to exhaust the parser's stack.
MAX_NESTING_DEPTH = 32

#: Data CSV files. A data set of 100,000 samples of 20 columns is about 20 MiB.
MAX_CSV_BYTES = 32 * MiB

#: Columns of a data CSV (time, inputs and observables; real files have a few dozen).
MAX_CSV_COLUMNS = 10_000

#: Cells of a data CSV (rows x columns, missing cells included): the table is held as float64 (8 bytes a
#: cell), so this caps it at 160 MB.
MAX_CSV_CELLS = 20_000_000

#: Weights (and biases) of all neural terms of a spec: each is a spec parameter with a sensitivity
#: equation; real hybrid models have a few hundred.
MAX_NEURAL_WEIGHTS = 100_000
