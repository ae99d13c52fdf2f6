"""Result files of the commands, written atomically: :mod:`~symode.report.fit` (fit.json, fitted.yaml,
report.md), :mod:`~symode.report.design` (design.json, report.md), :mod:`~symode.report.discover`
(discovery.json, pruned.yaml, report.md), each with its figures (:mod:`symode.viz`)."""
