"""All plotting, one object-oriented style: matplotlib Figure objects with their own Agg canvas
(:func:`symode.viz.plots.new_figure`), written atomically (:func:`symode.viz.plots.save_figure`); no
global backend switch, no pyplot state.

Modules: :mod:`~symode.viz.plots` (figures, trajectories), :mod:`~symode.viz.graph` (community graph),
:mod:`~symode.viz.fit`, :mod:`~symode.viz.design`, :mod:`~symode.viz.discover`.
"""
