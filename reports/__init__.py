"""Reports: figures, sweeps and tables from graphcost results (never computing costs themselves).

* :mod:`.fig5` — the ItNet paper's Fig. 5 from live numbers plus ``literature.csv``.
* :mod:`.anytime` — cost per output of an anytime network.
* :mod:`.crossbar_report` — arrays needed and throughput against chip size.
* :mod:`.heatmap` — sweep heat-maps in the style of the paper's Figs. A2/A3.
* :mod:`.cli` — ``graphcost report fig5|anytime|crossbar`` and ``graphcost sweep``.

The sweep engine lives in :mod:`graphcost.explore`, the executor and store in
:mod:`graphcost.runtime`.
"""
