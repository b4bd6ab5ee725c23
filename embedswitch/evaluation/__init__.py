"""Judging versions offline and on logged traffic: ranking metrics (``metrics``, a leaf), BEIR data
(``beir``), evaluation of versions on judged queries (``offline``), comparison of a candidate with
the live version on logged queries (``comparison``, ``querylog``), simulated users
(``simulation``) and recommender data (``interactions``)."""
